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
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import cv2
import numpy as np

from edge.errors import EdgeInputError
from mer_keras.preprocess.face import alignment_matrix, get_landmarker
from mer_keras.preprocess.frames import spot_apex_frames
from mer_keras.preprocess.representation import representation_from_frames
from mer_keras.runtime.metadata import MAX_FPS, ModelInfo
from mer_keras.runtime.tflite import TFLiteModel

#: Stages timed by :class:`WindowRunner` (seconds per window).
STAGES = ("face", "apex", "representation", "inference")


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
