"""Frames in: a video file, a folder of frame images, a glob pattern of them, or a camera.

:func:`open_capture` opens the source, :func:`read_frames` yields its (H, W, 3) uint8 RGB frames
and records in a :class:`StreamStatus` why a stream ended early, :func:`prefetch` reads ahead in a
thread of its own. OpenCV and numpy only.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.errors import EdgeInputError
from mer_keras.preprocess.video import VIDEO_SUFFIXES

#: Image files a frame folder or pattern is read from.
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


def _frame_order(path: Path) -> tuple:
    """Sort key of a frame file: the last number in its name (img9 before img10), then the name."""
    import re

    numbers = re.findall(r"\d+", path.stem)
    return (int(numbers[-1]) if numbers else -1, path.name)


class FrameFolder:
    """A folder of frame images (or a glob pattern), read like a ``cv2.VideoCapture``.

    Frames are sorted by the last number in their file names (CASME II's ``img46.jpg`` ..
    ``img51.jpg``, SAMM's ``006_05562.jpg``, SMIC's ``image1000001.bmp``). A file that cannot be
    read ends the stream and is named in ``failed``.
    """

    def __init__(self, paths: list[Path], name: str):
        self.paths, self.name, self.i, self.failed = sorted(paths, key=_frame_order), name, 0, None

    def isOpened(self) -> bool:  # noqa: N802  (cv2.VideoCapture's name)
        return bool(self.paths)

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.i >= len(self.paths):
            return False, None
        path = self.paths[self.i]
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if frame is None:
            self.failed = f"{path}: not a readable image (frame {self.i + 1} of {len(self.paths)})"
            return False, None
        self.i += 1
        return True, frame

    def get(self, prop: int) -> float:
        return float(len(self.paths)) if prop == cv2.CAP_PROP_FRAME_COUNT else 0.0

    def release(self) -> None:
        pass


def open_capture(video: str | None = None, camera: int | None = None) -> tuple[cv2.VideoCapture, float | None, str]:
    """Open a video file, a folder of frames, an image pattern (``"frames/*.jpg"``) or a camera.

    Returns:
        (capture, fps or None when the source does not say (always for frames), name).
    Raises:
        EdgeInputError: the file or folder is missing, holds no frame image, cannot be decoded, or
            the camera does not open.
    """
    if video is not None:
        path = Path(video)
        if path.is_dir() or any(c in str(video) for c in "*?["):
            import glob

            files = ([p for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES] if path.is_dir()
                     else [Path(p) for p in glob.glob(str(video)) if Path(p).suffix.lower() in FRAME_SUFFIXES])
            if not files:
                named = " (a folder named like a video file: give the video file itself)" if path.is_dir() and \
                    path.suffix.lower() in VIDEO_SUFFIXES else ""
                raise EdgeInputError(f"{video}: no frame images ({', '.join(FRAME_SUFFIXES)}) there{named}")
            return FrameFolder(files, str(video)), None, str(video)
        if path.is_symlink() and not path.exists():
            raise EdgeInputError(f"{video}: a symbolic link to nothing (or a loop of links), not a video file or "
                                 "frame folder")
        if not path.is_file():
            raise EdgeInputError(f"{video}: no such video file or frame folder")
        cap, name = cv2.VideoCapture(str(video)), str(video)
    else:
        cap, name = cv2.VideoCapture(int(camera or 0)), f"camera {camera}"
    if not cap.isOpened():
        cap.release()
        raise EdgeInputError(f"{name}: cannot open (missing device, corrupt file or unsupported codec)")
    fps = cap.get(cv2.CAP_PROP_FPS)
    return cap, (float(fps) if fps and fps > 0 and np.isfinite(fps) else None), name


@dataclass
class StreamStatus:
    """How a stream ended: ``error`` when it ended early (a damaged or truncated file, an unreadable
    frame image) rather than at its end or at ``limit``."""

    error: str | None = None


def stated_frames(cap, limit: int | None = None) -> int | None:
    """Frames the source says it holds (a video file's count, a frame folder's files; None for a
    camera), at most ``limit``."""
    n = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    n = int(n) if n and np.isfinite(n) and n > 0 else None
    return min(n, limit) if n is not None and limit else n


def stream_error(cap, decoded: int) -> str | None:
    """Why a stream that stopped after ``decoded`` frames stopped early, or None at its real end.

    A frame folder names its unreadable file. A video file states its frame count; a stream that
    stops more than 2 frames (and 2 %) short of it is damaged in the middle or truncated. A camera
    states none.
    """
    if isinstance(cap, FrameFolder):
        return cap.failed
    stated = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    if stated and np.isfinite(stated) and stated - decoded > max(2, 0.02 * stated):
        return f"decoding stopped at frame {decoded} of the {int(stated)} the file states (damaged or truncated)"
    return None


def prefetch(frames: Iterable[np.ndarray], depth: int = 32) -> Iterator[np.ndarray]:
    """``frames`` read ahead by up to ``depth`` in a thread of their own (decoding overlaps the work).

    An exception of the reader is raised at the point of the stream where it happened. Stopping
    early (``close()`` or garbage collection of this generator) stops the reader.
    """
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def reader():
        try:
            for frame in frames:
                while not stop.is_set():
                    try:
                        q.put(frame, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(end)
        except BaseException as exc:  # handed to the consumer
            q.put(exc)

    thread = threading.Thread(target=reader, name="frame-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is end:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


def read_frames(cap: cv2.VideoCapture, limit: int | None = None,
                status: StreamStatus | None = None) -> Iterator[np.ndarray]:
    """(H, W, 3) uint8 RGB frames of an open capture, until it ends (or ``limit`` frames).

    With ``status``, an early end (:func:`stream_error`) is recorded in it.
    """
    n = 0
    while limit is None or n < limit:
        ok, frame = cap.read()
        if not ok:
            if status is not None:
                status.error = stream_error(cap, n)
            break
        n += 1
        yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
