"""From a stream of video frames to micro-expression predictions, on a device without TensorFlow.

A window of ``L`` frames slides over the stream with stride ``S`` (both from ``metadata.json``,
rescaled to the video's frame rate). In each window:

1. **face**: the mediapipe face mesh on the window's first frame (the onset) gives the landmarks
   and the alignment of the whole window, exactly as in training (one similarity transform per
   clip, from the onset frame). A window whose onset has no face is reported and skipped.
2. **apex**: the frame of largest motion against the onset (DIS flow on the aligned 64 px
   grayscale face, :func:`mer_keras.preprocess.frames.spot_apex_frames`).
3. **representation**: :func:`mer_keras.preprocess.representation.representation_from_frames`
   with onset = window start, apex as found, offset = window end: the very function the training
   pipeline calls, so the model sees what it was trained on.
4. **inference**: :class:`mer_keras.runtime.tflite.TFLiteModel` (ai-edge-litert).

Windows are independent, so ``workers`` > 1 prepares that many at once in threads (steps 1-3;
OpenCV and mediapipe release the GIL); inference stays in the calling thread, results come out
in stream order and match one worker's exactly. On 2 cores TV-L1 flow gains more from two windows at once than from
two threads inside one flow computation (docs/EDGE.md, Speed).

Imports numpy, OpenCV, mediapipe, ai-edge-litert, ``mer_keras.preprocess`` and ``mer_keras.runtime``
(the TFLite wrapper and the metadata.json schema; neither imports TensorFlow); never TensorFlow or
mer_keras training code.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from mer_keras.preprocess.face import alignment_matrix, get_landmarker
from mer_keras.preprocess.frames import spot_apex_frames
from mer_keras.preprocess.representation import representation_from_frames
from mer_keras.preprocess.video import VIDEO_SUFFIXES
from mer_keras.runtime.metadata import MAX_FPS, MetadataError, ModelInfo, ModelMetadata, check_output_count
from mer_keras.runtime.tflite import TFLiteModel

#: Stages timed by :class:`WindowRunner` (seconds per window).
STAGES = ("face", "apex", "representation", "inference")


class EdgeInputError(ValueError):
    """A model, metadata file, video or camera the runner cannot use (the message names it)."""


def read_metadata(path: str | Path, window_seconds: float | None = None) -> ModelInfo:
    """Parse a run's ``metadata.json`` (written by ``mer-keras train`` / ``mer-keras export``).

    The schema and its checks are :class:`mer_keras.runtime.metadata.ModelMetadata`.

    Args:
        window_seconds: override the window length (stride stays half a window unless the
            metadata says otherwise); needed for metadata written before windows were recorded.
    Raises:
        EdgeInputError: missing or unreadable file, or a missing/invalid field (named): window
            length, frame rate and stride must be numbers > 0 within
            :data:`~mer_keras.runtime.metadata.MAX_WINDOW_SECONDS` and :data:`MAX_FPS`.
    """
    try:
        return ModelMetadata.from_file(path).model_info(window_seconds)
    except MetadataError as exc:
        raise EdgeInputError(str(exc)) from None


def check_model_path(path: Path) -> None:
    """Refuse a ``--model`` that is not a ``.tflite`` file, saying what to give instead.

    Raises:
        EdgeInputError: a folder (its ``.tflite`` files are listed), a Keras model, or a symbolic
            link to nothing (or a loop of links).
    """
    if path.is_dir():
        found = sorted(p.name for p in path.glob("*.tflite") if p.is_file())
        raise EdgeInputError(f"{path}: a folder; give the .tflite model file inside it with --model"
                             + (f" ({', '.join(found)})" if found else " (it holds none: export one with "
                                                                         "`mer-keras export RUN`)"))
    if path.is_symlink() and not path.exists():
        raise EdgeInputError(f"{path}: a symbolic link to nothing (or a loop of links); expected a .tflite model file")
    if path.suffix.lower() in (".keras", ".h5"):
        raise EdgeInputError(f"{path}: a Keras model; the edge runner takes a .tflite model (`mer-keras export RUN` "
                             "writes model_fp32.tflite and model_int8.tflite beside it)")


def load(model_path: str | Path, metadata: str | Path | None = None, num_threads: int | None = None,
         window_seconds: float | None = None, delegate: str | None = None, allow_modified: bool = False,
         warn: Callable[[str], None] | None = None) -> tuple[TFLiteModel, ModelInfo]:
    """The TFLite model and its metadata (``metadata.json`` beside the model unless given), checked
    against each other.

    In order: the metadata (:class:`~mer_keras.runtime.metadata.ModelMetadata`: ``classes`` a list
    of unique non-empty names, a usable window), the model file's sha256 against the one the
    metadata records for its name (hashed once, before the interpreter parses it:
    :meth:`~mer_keras.runtime.metadata.ModelMetadata.verify`), the interpreter, the model's input
    against the representation, its outputs against the classes.

    Args:
        allow_modified: use a model file whose sha256 differs from the recorded one, with a
            warning (``--allow-modified``); the other checks stay.
        warn: where that warning goes (default :func:`warnings.warn`).
    Raises:
        EdgeInputError: unreadable model or metadata, a model file other than the metadata records
            (unless ``allow_modified``), or a model whose input does not match the metadata's
            representation or whose outputs are not its classes (each names the file).
    """
    model_path = Path(model_path)
    if not model_path.exists() and len(model_path.parts) == 1:  # a preset's name: its int8 model
        from mer_keras.presets import resolve

        folder = resolve(model_path)
        model_path = folder / "model_int8.tflite" if folder.is_dir() else model_path
    check_model_path(model_path)
    meta_path = Path(metadata) if metadata else model_path.with_name("metadata.json")
    try:
        meta = ModelMetadata.from_file(meta_path)
        info = meta.model_info(window_seconds)
    except MetadataError as exc:
        raise EdgeInputError(str(exc)) from None
    try:
        if model_path.is_file():  # a missing file is named by the interpreter's message
            meta.verify(model_path, allow_modified, warn)
        model = TFLiteModel(model_path, num_threads=num_threads, delegate=delegate)
        check_output_count(model_path, model.num_outputs, info.classes, meta_path, allow_modified)
    except ValueError as exc:
        raise EdgeInputError(str(exc)) from None
    expected = tuple(info.representation.input_shape)
    if model.input_shape != expected:
        raise EdgeInputError(f"{model_path}: the model takes {model.input_shape} but {meta_path} describes "
                             f"{info.representation.representation} inputs of shape {expected}")
    return model, info


@dataclass
class Window:
    """One analysed window: frame indices are 0-based positions in the stream."""

    start: int
    end: int
    fps: float
    apex: int | None = None
    probabilities: np.ndarray | None = None
    input: np.ndarray | None = None
    no_face: bool = False
    seconds: dict = field(default_factory=dict)

    def record(self, classes: list[str]) -> dict:
        """The JSON line of this window."""
        out = {"time": round(self.start / self.fps, 4), "time_end": round(self.end / self.fps, 4),
               "frames": [self.start, self.end]}
        if self.no_face:
            return {**out, "event": "no_face", "message": f"no face in frame {self.start} (window onset); skipped"}
        p = self.probabilities
        return {**out, "apex": self.apex, "label": classes[int(p.argmax())],
                "probabilities": {c: round(float(v), 4) for c, v in zip(classes, p)}}


class WindowRunner:
    """Slide the model's window over frames and classify each window (see the module docstring).

    Face, apex and representation run in ``workers`` threads; inference runs in the thread that
    consumes :meth:`windows` (the interpreter, and a GPU delegate bound to the thread that made
    it, stay on one thread). Use as a context manager, or call :meth:`close`, to stop the threads.

    Args:
        model: the TFLite classifier. info: its metadata. fps: the stream's frame rate.
        keep_inputs: keep each window's network input on the :class:`Window` (parity checks).
        workers: windows analysed at once (threads, each with its own face mesh). At most
            ``workers`` windows are in flight: memory holds their frames, and a finished window is
            output as soon as the windows before it are.
    Raises:
        EdgeInputError: a frame rate outside (0, :data:`MAX_FPS`] or ``workers`` not an integer >= 1.
    """

    def __init__(self, model: TFLiteModel, info: ModelInfo, fps: float, keep_inputs: bool = False,
                 workers: int = 1):
        if not 0 < float(fps) <= MAX_FPS:
            raise EdgeInputError(f"frame rate {fps} frames/s is not in (0, {MAX_FPS:g}]")
        if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
            raise EdgeInputError(f"workers {workers!r}: an integer >= 1 is needed")
        self.model, self.info, self.fps = model, info, float(fps)
        self.length, self.stride = info.window_frames(self.fps)
        self.keep_inputs, self.workers = keep_inputs, int(workers)
        get_landmarker()  # load the face mesh now: a missing model fails here, not in the first window
        # each worker loads its own face mesh when it starts, outside the timed face stage
        self._pool = (ThreadPoolExecutor(self.workers, thread_name_prefix="window", initializer=get_landmarker)
                      if self.workers > 1 else None)

    def __enter__(self) -> WindowRunner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the worker threads (windows not yet started are dropped)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def windows(self, frames: Iterable[np.ndarray]) -> Iterator[Window]:
        """Analyse every complete window of ``frames`` ((H, W, 3) uint8 RGB, in order); yield them in stream order."""
        if self._pool is None:
            for clip, start in self._clips(frames):
                if clip is not None:
                    yield self.infer(self.prepare(clip, start))
            return
        pending: deque = deque()
        try:
            for clip, start in self._clips(frames):
                if clip is not None:
                    pending.append(self._pool.submit(self.prepare, clip, start))
                # a full pipeline waits for its oldest window; otherwise finished windows go out at once
                while pending and (len(pending) >= self.workers or pending[0].done()):
                    yield self.infer(pending.popleft().result())
            while pending:
                yield self.infer(pending.popleft().result())
        finally:  # stopped early (Ctrl-C, an error, a consumer that breaks off): wait for what runs
            for future in pending:
                future.cancel()
            for future in pending:
                if not future.cancelled():
                    future.exception()

    def _clips(self, frames: Iterable[np.ndarray]) -> Iterator[tuple[list[np.ndarray] | None, int]]:
        """Per frame read: (the window's frames, its start) when a window is complete, else (None, -1)."""
        buffer: deque = deque(maxlen=self.length)
        next_start = 0
        for index, frame in enumerate(frames):
            buffer.append(frame)
            start = index - self.length + 1
            if start == next_start:
                next_start += self.stride
                yield list(buffer), start
            else:
                yield None, -1

    def analyse(self, clip: list[np.ndarray], start: int) -> Window:
        """Classify one window of raw RGB frames starting at stream frame ``start``."""
        return self.infer(self.prepare(clip, start))

    def prepare(self, clip: list[np.ndarray], start: int) -> Window:
        """Face, apex and the network input of one window (any thread); :meth:`infer` classifies it."""
        w = Window(start, start + len(clip) - 1, self.fps)
        t0 = time.perf_counter()
        landmarks = get_landmarker()(np.asarray(clip[0]))  # one face mesh per thread
        t1 = time.perf_counter()
        w.seconds["face"] = t1 - t0
        if landmarks is None:
            w.no_face = True
            return w
        m = alignment_matrix(landmarks, 64)
        small = [cv2.warpAffine(np.asarray(f), m, (64, 64), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
                 for f in clip]
        apex = spot_apex_frames(small)
        t2 = time.perf_counter()
        w.input = representation_from_frames(clip, 0, apex, len(clip) - 1, self.info.representation,
                                             clip_id=f"window at frame {start}", landmarks=landmarks)
        w.apex = start + apex
        w.seconds.update(apex=t2 - t1, representation=time.perf_counter() - t2)
        return w

    def infer(self, w: Window) -> Window:
        """Run the model on a prepared window (the thread that owns the interpreter)."""
        if w.no_face:
            return w
        t0 = time.perf_counter()
        w.probabilities = self.model.predict(w.input[None])[0]
        w.seconds["inference"] = time.perf_counter() - t0
        if not self.keep_inputs:
            w.input = None
        return w


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
