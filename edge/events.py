"""Spot, then recognise: events from a long video or a camera, on a device without TensorFlow.

Every frame goes to the streaming spotter (:class:`mer_keras.runtime.spotting.Spotter`: face mesh
every ``landmark_every`` s, aligned grey face, flow against a frame k back, peaks relative to the
stream's own signal), the same code ``mer-keras spot`` scores. When the spotter closes an interval:

* a **micro-expression** is recognised: its frames, onset to offset, from a buffer of face crops
  go through :func:`mer_keras.preprocess.representation.representation_from_frames` (onset
  landmarks, the spotted apex), exactly as in training, then the TFLite model. The representation
  (TV-L1 flow takes about 0.3 s) is built in a thread of its own, so the stream is not held up;
  the model runs in the caller's thread, and events come out in stream order;
* a **macro-expression** is reported with its type and no class (the model knows micro-expressions).

The buffer holds face crops, not whole frames: a square window around the face (1.6 times the
landmarks' extent, see :class:`FaceWindow`), at most :data:`CROP_SIDE` px, moved only when the face
leaves it; crops of one interval taken in different windows are mapped into the onset's window.
It keeps enough frames for the spotter's latency (``2 * macro_k + max_micro + 1`` s).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np

from mer_keras.preprocess.representation import representation_from_frames
from mer_keras.runtime.intervals import Interval
from mer_keras.runtime.metadata import ModelInfo
from mer_keras.runtime.spotting import SpotConfig, Spotter
from mer_keras.runtime.tflite import TFLiteModel

#: Largest side of a buffered face crop, px.
CROP_SIDE = 256


class FaceWindow:
    """A square window around the face: raw frame -> crop of at most :data:`CROP_SIDE` px.

    The window is placed on the landmarks' centre with a side of 1.6 times their larger extent,
    and moved only when the face centre leaves its middle 30 % or the face size changes by 20 %.
    ``matrix`` maps raw pixels to crop pixels; ``id`` counts the moves.
    """

    def __init__(self):
        self.matrix: np.ndarray | None = None
        self.id = -1
        self._centre = self._side = None
        self.size = CROP_SIDE

    def update(self, landmarks: np.ndarray) -> None:
        lo, hi = landmarks.min(0), landmarks.max(0)
        centre, extent = (lo + hi) / 2, float((hi - lo).max())
        side = 1.6 * extent
        if self.matrix is not None and np.abs(centre - self._centre).max() < 0.15 * self._side \
                and 0.8 < side / self._side < 1.25:
            return
        self._centre, self._side = centre, side
        self.size = int(min(CROP_SIDE, max(64, round(side))))
        s = self.size / side
        self.matrix = np.array([[s, 0, self.size / 2 - s * centre[0]], [0, s, self.size / 2 - s * centre[1]]])
        self.id += 1

    def crop(self, frame: np.ndarray) -> np.ndarray:
        return cv2.warpAffine(frame, self.matrix, (self.size, self.size), flags=cv2.INTER_AREA,
                              borderMode=cv2.BORDER_REPLICATE)


@dataclass
class Event:
    """A spotted interval (0-based stream frames) and, for a micro-expression, its class probabilities."""

    interval: Interval
    fps: float
    probabilities: np.ndarray | None = None
    note: str = ""
    seconds: dict = field(default_factory=dict)

    def record(self, classes: list[str]) -> dict:
        """The JSON line of this event."""
        it = self.interval
        out = {"event": it.type, "time": round(it.onset / self.fps, 4), "time_end": round(it.offset / self.fps, 4),
               "frames": [it.onset, it.offset], "apex": it.apex, "score": it.score}
        if self.probabilities is not None:
            p = self.probabilities
            out["label"] = classes[int(p.argmax())]
            out["probabilities"] = {c: round(float(v), 4) for c, v in zip(classes, p)}
        if self.note:
            out["note"] = self.note
        return out


@dataclass
class NoFace:
    """A stretch of frames ``start..end`` (0-based, both included) in which no face was found."""

    start: int
    end: int
    fps: float

    def record(self, classes: list[str]) -> dict:
        return {"event": "no_face", "time": round(self.start / self.fps, 4), "time_end": round(self.end / self.fps, 4),
                "frames": [self.start, self.end], "message": f"no face in frames {self.start}-{self.end}; nothing "
                                                             "spotted there"}


class SpotRunner:
    """Spot expressions in a stream of frames and recognise the micro-expressions (module docstring).

    Args:
        model: the TFLite classifier. info: its metadata. fps: the stream's frame rate.
        cfg: spotting parameters (default :class:`SpotConfig`). workers: 2 runs the spotter's two
            flows per frame in two threads.
    Attributes:
        seconds: total seconds spent in {"spotting", "crop", "recognition"}.
    """

    def __init__(self, model: TFLiteModel, info: ModelInfo, fps: float, cfg: SpotConfig | None = None,
                 workers: int = 1):
        self.model, self.info, self.fps = model, info, float(fps)
        self.cfg = cfg or SpotConfig()
        self.spotter = Spotter(self.fps, self.cfg, workers=workers)
        c = self.cfg
        self.buffer: deque = deque(maxlen=c.frames(2 * c.macro_k + c.max_micro + 1.0, self.fps))
        self.window = FaceWindow()
        self.seconds = {"spotting": 0.0, "crop": 0.0, "recognition": 0.0}
        self.frames = 0
        self._pending: deque = deque()   # (event, future of its input or None), in stream order
        self._pool = None                # one recognition thread, started at the first micro-expression
        self._no_face_from: int | None = None  # first frame of the current stretch without a face

    @property
    def latency_frames(self) -> int:
        """How many frames after its offset an interval is reported, at most (the buffer's length)."""
        return self.buffer.maxlen

    def events(self, frames: Iterable[np.ndarray]) -> Iterator[Event | NoFace]:
        """Push (H, W, 3) uint8 RGB frames in order; yield each spotted event once it is decided."""
        for frame in frames:
            yield from self.push(frame)
        yield from self.finish()

    def push(self, frame: np.ndarray) -> list[Event | NoFace]:
        """One frame in; the events finished by now, in stream order (usually none): spotted
        intervals, and stretches without a face (:class:`NoFace`, once the face is back)."""
        t0 = time.perf_counter()
        intervals = self.spotter.push(frame)
        t1 = time.perf_counter()
        landmarks = self.spotter.tracker.landmarks
        if landmarks is not None and self.spotter.tracker.matrix is not None:
            self.window.update(landmarks)
        if self.window.matrix is not None:
            lm = None if landmarks is None else landmarks @ self.window.matrix[:, :2].T + self.window.matrix[:, 2]
            self.buffer.append((self.frames, self.window.crop(frame), self.window.id, self.window.matrix.copy(), lm))
        for interval in intervals:
            self._submit(interval)
        has_face = self.spotter.tracker.matrix is not None
        if not has_face and self._no_face_from is None:
            self._no_face_from = self.frames
        elif has_face and self._no_face_from is not None:
            self._pending.append((NoFace(self._no_face_from, self.frames - 1, self.fps), None))
            self._no_face_from = None
        self.frames += 1
        self.seconds["spotting"] += t1 - t0
        self.seconds["crop"] += time.perf_counter() - t1
        return self._drain(wait=False)

    def finish(self) -> list[Event | NoFace]:
        """The events still open at the end of the stream, and those still being recognised."""
        for interval in self.spotter.finish():
            self._submit(interval)
        if self._no_face_from is not None:
            self._pending.append((NoFace(self._no_face_from, self.frames - 1, self.fps), None))
            self._no_face_from = None
        out = self._drain(wait=True)
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        return out

    def _submit(self, interval: Interval) -> None:
        """Queue an interval; a micro-expression's representation is built in the recognition thread."""
        event = Event(interval, self.fps)
        future = None
        if interval.type == "micro":
            held = {entry[0]: entry for entry in self.buffer}
            frames = [held.get(i) for i in range(interval.onset, interval.offset + 1)]
            if any(f is None for f in frames) or frames[0][4] is None:
                event.note = "its frames are no longer buffered; not recognised"
            else:
                if self._pool is None:
                    from concurrent.futures import ThreadPoolExecutor

                    self._pool = ThreadPoolExecutor(1, thread_name_prefix="recognition")
                future = self._pool.submit(self._representation, interval, frames)
        self._pending.append((event, future))

    def _drain(self, wait: bool) -> list[Event | NoFace]:
        """Events whose recognition is done (all of them with ``wait``), in stream order; the model runs here."""
        out = []
        while self._pending and (wait or self._pending[0][1] is None or self._pending[0][1].done()):
            event, future = self._pending.popleft()
            if future is not None:
                x, seconds = future.result()
                t0 = time.perf_counter()
                event.probabilities = self.model.predict(x[None])[0]  # the interpreter stays on the caller's thread
                event.seconds["recognition"] = seconds + time.perf_counter() - t0
                self.seconds["recognition"] += event.seconds["recognition"]
            out.append(event)
        return out

    def _representation(self, interval: Interval, frames: list) -> tuple[np.ndarray, float]:
        """The network input of a micro-expression from its buffered crops (recognition thread)."""
        t0 = time.perf_counter()
        onset_matrix = frames[0][3]
        crops = []
        for _, crop, _, matrix, _ in frames:
            if not np.array_equal(matrix, onset_matrix):  # the window moved: map into the onset's window
                to_onset = _compose(onset_matrix, cv2.invertAffineTransform(matrix))
                crop = cv2.warpAffine(crop, to_onset, (frames[0][1].shape[1], frames[0][1].shape[0]),
                                      flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            crops.append(crop)
        x = representation_from_frames(crops, 0, interval.apex - interval.onset, interval.offset - interval.onset,
                                       self.info.representation, clip_id=f"interval at frame {interval.onset}",
                                       landmarks=frames[0][4])
        return x, time.perf_counter() - t0


def _compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The 2x3 affine of ``a`` after ``b``."""
    a3, b3 = np.vstack([a, [0, 0, 1]]), np.vstack([b, [0, 0, 1]])
    return (a3 @ b3)[:2]
