"""Video files as frame folders: decoded once (OpenCV) into the cache, verified, published whole.

One folder per video file (its path, size and modification time), ``<cache>/videos/<stem>-<hash>/``
holding ``frame_00001.png`` ... and ``decoded.json`` (how many frames were decoded). A folder is
published (renamed into place) only after every decoded frame was written and checked, and is
reused only when its ``decoded.json`` and its frame files agree. Two processes that need one video
take its lock (``<folder>.lock``): the second waits, then reuses the folder the first published.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import cv2

from mer_keras.atomic import atomic_dir, likely_errno, lock_path, locked, remove_leftovers, sweep_leftovers, write_error
from mer_keras.errors import DataError

#: Containers taken as videos (and decoded with OpenCV's FFmpeg backend). A file with one of these
#: suffixes that OpenCV cannot open is a DataError naming it; other suffixes are not videos.
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".wmv", ".webm", ".flv", ".f4v",
                  ".3gp", ".3g2", ".ogv", ".ts", ".mts", ".m2ts", ".mxf", ".asf", ".vob", ".divx", ".qt")

#: Written last into a decoded folder: ``{"video", "size", "mtime_ns", "frames"}``. A folder without
#: it, or whose frame files do not match it (an extraction killed or failed before this format),
#: is decoded again.
MARKER = "decoded.json"

#: The last 12 bytes of every complete PNG file: its IEND chunk.
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"

#: Decoded folders found complete: (path, inode, modification time) -> True, so that clips coded
#: in one long video do not list its folder once per clip.
_COMPLETE: set[tuple[str, int, int]] = set()


def is_video(path: str | os.PathLike) -> bool:
    """True for a file whose suffix is a video container of :data:`VIDEO_SUFFIXES`."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES and Path(path).is_file()


def extract_frames(video: str | os.PathLike, cache_dir: str | os.PathLike) -> Path:
    """Decode every frame of ``video`` to ``<cache_dir>/videos/<stem>-<hash>/frame_<n>.png`` (n from 1).

    The folder is keyed by the video's path, size and modification time (nanoseconds). A complete
    folder is reused without taking any lock (a read-only cache works). Otherwise, holding the
    folder's lock: frames are decoded into a temporary folder beside it, every write is checked
    (``cv2.imwrite``'s result), then every frame file is verified present and a complete PNG,
    their count equal to the number decoded, ``decoded.json`` written, and the folder renamed into
    place (replacing an unverifiable folder of an older version). What killed writers left
    (temporary folders, lock files) is removed.

    Returns:
        The frame folder.
    Raises:
        DataError: the file cannot be opened or holds fewer than 2 decodable frames (named).
        OSError: a frame or the folder cannot be written (a full disk, a read-only cache):
            ``cannot write <folder>: <reason> (frame <n> of <video>)``, errno kept; nothing is published.
    """
    try:
        video = Path(video).resolve()
    except (RuntimeError, OSError):  # a loop of symbolic links
        raise DataError(f"{video}: a loop of symbolic links, not a video") from None
    st = video.stat()
    key = hashlib.sha256(f"{video}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    out = Path(cache_dir) / "videos" / f"{video.stem}-{key}"
    if _complete(out):
        return out
    with locked(lock_path(out)):
        if _complete(out):  # another process decoded it while this one waited for the lock
            return out
        remove_leftovers(out)  # temporary folders of writers killed before they published
        _remove_legacy_temps(out.parent, out.name)
        with atomic_dir(out) as tmp:
            n = _decode(video, tmp, out)
            _verify(tmp, n, video, out)
            try:
                (tmp / MARKER).write_text(json.dumps({"video": str(video), "size": st.st_size,
                                                      "mtime_ns": st.st_mtime_ns, "frames": n}))
            except OSError as exc:
                raise write_error(out, exc, f"{exc.strerror or exc} (writing {MARKER}, decoding {video})") from exc
    sweep_leftovers(out.parent)  # other videos' leftovers, when no process is writing them
    _remove_legacy_temps(out.parent)
    return out


def _decode(video: Path, tmp: Path, out: Path) -> int:
    """Decode ``video`` into ``tmp``, one PNG per frame, each write checked; the number of frames.

    Raises:
        DataError: not openable, or fewer than 2 frames. OSError: a frame could not be written.
    """
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
            name = f"frame_{n:05d}.png"
            try:
                written = cv2.imwrite(str(tmp / name), frame)
            except cv2.error:
                written = False
            if not written:
                code = likely_errno(tmp, frame.nbytes)
                reason = os.strerror(code) if code else "OpenCV could not write the PNG file"
                raise write_error(out, code, f"{reason} (frame {n} of {video}, as {name})")
    finally:
        cap.release()
    if n < 2:
        raise DataError(f"video {video} has {n} decodable frame(s); at least 2 are needed")
    return n


def _verify(tmp: Path, n: int, video: Path, out: Path) -> None:
    """Check that ``tmp`` holds frames 1..``n``, each a non-empty PNG that ends with its IEND chunk.

    Raises:
        OSError: a frame file missing, empty or cut short (a write the disk did not keep), named.
    """
    for i in range(1, n + 1):
        path = tmp / f"frame_{i:05d}.png"
        try:
            size = path.stat().st_size
            with open(path, "rb") as f:
                f.seek(max(size - len(_PNG_END), 0))
                complete = size > len(_PNG_END) and f.read() == _PNG_END
        except FileNotFoundError:
            complete = False
        if not complete:
            code = likely_errno(tmp, 0)
            reason = os.strerror(code) if code else "the file was not kept whole"
            raise write_error(out, code, f"{reason} (frame {i} of the {n} decoded from {video}, as {path.name}, "
                                         "is missing, empty or cut short)")


def _complete(out: Path) -> bool:
    """True if ``out`` is a published folder whose frame files agree with its ``decoded.json``."""
    try:
        st = os.stat(out)
    except OSError:
        return False
    seen = (str(out), st.st_ino, st.st_mtime_ns)
    if seen in _COMPLETE:
        return True
    try:
        frames = int(json.loads((out / MARKER).read_text())["frames"])
        found = [e for e in os.scandir(out) if e.name.startswith("frame_") and e.name.endswith(".png")]
        ok = len(found) == frames and all(e.stat().st_size > 0 for e in found)
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if ok:
        _COMPLETE.add(seen)
    return ok


_LEGACY_TEMP = re.compile(r"^(?P<name>.+)\.tmp-(?P<pid>\d+)$")


def _remove_legacy_temps(folder: Path, name: str | None = None) -> None:
    """Remove ``<name>.tmp-<pid>`` folders (the temporary folders of versions before the lock) whose
    process is gone; all of them with ``name`` None, else those of ``name``."""
    import shutil

    try:
        entries = os.listdir(folder)
    except OSError:
        return
    for entry in entries:
        m = _LEGACY_TEMP.match(entry)
        if m and (name is None or m["name"] == name) and not _alive(int(m["pid"])):
            shutil.rmtree(folder / entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    """True if a process ``pid`` runs on this machine (and is not this one's dead predecessor)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
