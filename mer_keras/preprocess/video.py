"""Video files as frame folders: decoded once (OpenCV) into the cache, atomically."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import cv2

from mer_keras.errors import DataError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".wmv")


def is_video(path: str | os.PathLike) -> bool:
    """True for a file whose suffix is a video container of :data:`VIDEO_SUFFIXES`."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES and Path(path).is_file()


def extract_frames(video: str | os.PathLike, cache_dir: str | os.PathLike) -> Path:
    """Decode every frame of ``video`` to ``<cache_dir>/videos/<hash>/frame_<n>.png`` (n from 1).

    The folder is keyed by the video's path, size and modification time; an existing folder is
    reused; a new one is written to a temporary folder and renamed, so a killed extraction is
    never trusted.

    Returns:
        The frame folder.
    Raises:
        DataError: the file cannot be opened or holds fewer than 2 decodable frames (named).
    """
    try:
        video = Path(video).resolve()
    except (RuntimeError, OSError):  # a loop of symbolic links
        raise DataError(f"{video}: a loop of symbolic links, not a video") from None
    st = video.stat()
    key = hashlib.sha256(f"{video}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    out = Path(cache_dir) / "videos" / f"{video.stem}-{key}"
    if out.is_dir():
        return out
    tmp = out.with_name(out.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    cap = cv2.VideoCapture(str(video))
    try:
        if not cap.isOpened():
            raise DataError(f"cannot open video {video} (corrupt, truncated or an unsupported codec)")
        n = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            n += 1
            cv2.imwrite(str(tmp / f"frame_{n:05d}.png"), frame)
        if n < 2:
            raise DataError(f"video {video} has {n} decodable frame(s); at least 2 are needed")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        cap.release()
    os.replace(tmp, out)
    return out
