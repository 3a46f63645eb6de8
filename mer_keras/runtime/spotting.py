"""Spotting: when does a micro- or macro-expression happen in a long video? (TF-free; edge/ uses it.)

Method (the optical-flow magnitude family of the MEGC spotting baselines, with the project's
choices stated):

1. **Face.** The mediapipe face mesh on one frame every ``landmark_every`` seconds gives the
   similarity transform (:func:`~mer_keras.preprocess.face.alignment_matrix`) that maps each frame
   to a ``size`` px grey face, gain-normalised over the face (illumination changes).
2. **Flow against a frame k back.** For each frame t, DIS optical flow (Kroeger et al., ECCV 2016)
   from frame t-k to frame t: F_k(t) = d(t) - d(t-k) for the displacement d of each facial point.
   A least-squares affine motion fitted over the face (eyes excluded) is subtracted: what is left
   is non-rigid, so head translation, roll, scale and the jumps of the alignment when landmarks
   are refreshed go. The residual is averaged in ``grid`` x ``grid`` cells.
3. **Two references.** Per cell, the motion of frame t against both t-k and t+k:

       m(t) = min(|F_k(t)|, |F_k(t+k)|, |F_k(t) - F_k(t+k)| / 2)

   During an expression shorter than 2k all three equal |d(t)|, the displacement from the
   neutral face, so m traces the expression from onset to offset; slow drift (linear in t)
   cancels in the third term; the echo a single reference leaves k frames after an expression is
   removed by the minimum.
4. **Local, not global.** The signal is the mean of the ``top`` fraction of face cells minus the
   median cell (an expression is local; noise, illumination and out-of-plane head motion are
   spread over the face). Eye cells are excluded, so blinks do not count; brows, cheeks, nose
   and mouth do. Smoothed by a moving average of ``smooth`` seconds.
5. **Peaks.** Threshold relative to the video's own signal: median + ``z`` x 1.4826 MAD over the
   last ``history`` seconds. Each run above it is one candidate; its apex is the peak and its
   onset and offset are where the signal falls back to ``edge`` of the peak height above the
   median.
6. **Two scales.** k = ``micro_k`` seconds finds micro-expressions (kept when at most
   ``max_micro`` s long, MEGC's bound), k = ``macro_k`` finds macro-expressions (kept when
   longer); a micro candidate inside a macro-expression is the macro-expression's rise or fall
   and is dropped.

The spotter runs as a stream (:class:`Spotter`): an interval is reported once the macro-scale
signal has passed its offset, about ``macro_k`` + the interval's length after its onset.
Offline use (:func:`spot_frames`) feeds the same stream, so ``mer-keras spot`` and the edge runner
give the same intervals.

The steps live in their own modules: 1-4 in :mod:`~mer_keras.runtime.spot_signal`, 5 in
:mod:`~mer_keras.runtime.spot_peaks`, the parameters and the reasons a video gave nothing in
:mod:`~mer_keras.runtime.spot_config`; this module holds the stream that joins them.

Limits: one face; a face lost for a while restarts the signal (no interval spans the gap); an
expression longer than 2 x ``macro_k`` is cut; a micro-expression during a macro-expression is
not reported.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import numpy as np

from mer_keras.runtime.intervals import Interval
from mer_keras.runtime.spot_config import SpotConfig
from mer_keras.runtime.spot_peaks import find_intervals, robust_threshold
from mer_keras.runtime.spot_signal import FaceTracker, MotionSignal, eye_cells, face_masks
from mer_keras.runtime.spot_stage import candidate_features, load_stage

#: Label of a candidate :meth:`Spotter._refine` found to be a blink (never reported).
BLINK = "blink"


class Spotter:
    """The streaming spotter: raw frames in, closed intervals out (see the module docstring).

    Args:
        fps: frame rate of the stream. cfg: :class:`SpotConfig`. landmarker: see :class:`FaceTracker`.
        workers: 2 computes the two scales' flows in two threads (on 2 cores; same results).
    Attributes:
        signals: {"micro": [...], "macro": [...]}, one value per frame so far (NaN where not
            computed: without a face, and within k frames of a gap or of the start).
        last_features: the :func:`~mer_keras.runtime.spot_stage.candidate_features` of the last
            candidate measured (what ``tools/fit_spotter.py`` collects), or None.
    """

    def __init__(self, fps: float, cfg: SpotConfig | None = None, landmarker=None, workers: int = 1):
        self.cfg, self.fps = cfg or SpotConfig(), float(fps)
        self._pool = None
        if workers > 1:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(2, thread_name_prefix="spotting")
        if not (np.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"spotting needs a frame rate > 0, got {fps!r}")
        c = self.cfg
        self.k = {"micro": c.frames(c.micro_k, fps), "macro": c.frames(c.macro_k, fps)}
        self.tracker = FaceTracker(c, fps, landmarker)
        self.motion = {kind: MotionSignal(c, k) for kind, k in self.k.items()}
        self.signals: dict[str, list[float]] = {"micro": [], "macro": []}
        self.faces = 0          # frames pushed
        self._segment = 0       # first frame of the current face segment
        self._done = 0          # intervals ending before this frame have been decided
        self._smooth = max(1, c.frames(c.smooth, fps))
        self._every = max(1, c.frames(0.1, fps))  # decide ten times a second
        self._reported: list[Interval] = []  # intervals reported within the history (no second report)
        self._buffer: deque = deque(maxlen=c.frames(4 * c.macro_k + 1.0, fps))  # aligned faces for _refine
        self._face_pixels = face_masks(c.size, c.grid)[0]
        self._eye_pixels = eye_cells(c.size, c.size)
        self.last_features = None
        self.stage = load_stage(c.learned_model) if c.method == "learned" else None

    def push(self, frame: np.ndarray) -> list[Interval]:
        """Add the next (H, W, 3) uint8 RGB frame; the intervals closed by it (usually none)."""
        face = self.tracker(frame)
        index = self.faces
        self.faces += 1
        for kind in self.signals:
            self.signals[kind].append(np.nan)
        if face is None:
            out = self._decide(index, final=True)  # the segment ends at the lost face
            for m in self.motion.values():
                m.reset()
            self._segment = self._done = index + 1
            self._buffer.clear()
            return out
        self._buffer.append(face)
        if self._pool is None:
            values = [m.push(face) for m in self.motion.values()]
        else:  # the two scales' flows at once (OpenCV releases the GIL)
            values = list(self._pool.map(lambda m: m.push(face), self.motion.values()))
        for kind, value in zip(self.motion, values):
            if value is not None:
                self.signals[kind][index - self.k[kind]] = value
        if self.faces % self._every:
            return []
        return self._decide(index + 1 - self.k["macro"] - self._smooth)

    def finish(self) -> list[Interval]:
        """The intervals still open at the end of the stream (those closed by its end); stops the threads."""
        out = self._decide(self.faces, final=True)
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        return out

    def smoothed(self, kind: str, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """The signal of ``kind`` over frames ``lo..hi-1``, smoothed by a moving average of ``smooth``
        seconds (NaN stays NaN); an array of ``hi - lo`` values."""
        hi = len(self.signals[kind]) if hi is None else hi
        pad = self._smooth
        a = max(0, lo - pad)
        s = np.asarray(self.signals[kind][a:hi + pad], np.float64)
        if self._smooth > 1 and s.size:
            ok = np.isfinite(s)
            kernel = np.ones(self._smooth)
            centre = slice((len(kernel) - 1) // 2, (len(kernel) - 1) // 2 + len(s))  # "same", also when shorter
            num = np.convolve(np.where(ok, s, 0.0), kernel, mode="full")[centre]
            den = np.convolve(ok.astype(np.float64), kernel, mode="full")[centre]
            s = np.where(ok, num / np.maximum(den, 1), np.nan)
        return s[lo - a:lo - a + (hi - lo)]

    def _decide(self, settled: int, final: bool = False) -> list[Interval]:
        """Decide the runs that close before ``settled`` (all of them when ``final``).

        A run still open at ``settled`` (it may grow, or be part of a macro-expression whose
        signal is not complete) holds back every run from its onset on.
        """
        end = self.faces if final else settled
        if end <= self._done:
            return []
        c, fps = self.cfg, self.fps
        lo = max(self._segment, self.faces - c.frames(c.history, fps), 0)
        runs = {}
        for kind in ("micro", "macro"):
            s = np.full(end, np.nan)
            s[lo:end] = self.smoothed(kind, lo, end)
            base, thr = robust_threshold(s[lo:end], c.z)
            runs[kind] = [(*r, self.k[kind]) for r in find_intervals(s, max(self._done, lo), end, base, thr, c.edge)]
        open_from = end if final else min([r[0] for rs in runs.values() for r in rs if r[2] >= end - 1],
                                          default=end)
        self._done = open_from
        refined = [x for x in (self._refine(*r) for rs in runs.values() for r in rs if r[2] < open_from)
                   if x is not None]
        blinks = [x for x in refined if x.label == BLINK]
        found = []
        for interval in sorted(refined, key=lambda i: -i.score):  # the clearest first
            if interval.label == BLINK or any(interval.onset <= e.offset and e.onset <= interval.offset
                                              for e in found + self._reported + blinks):
                continue  # a blink (seen at either scale), or an expression seen at the other scale, kept once
            found.append(interval)
        self._reported = [e for e in self._reported if e.offset >= lo] + found
        return sorted(found, key=lambda i: i.onset)

    def _refine(self, on: int, apex: int, off: int, score: float, k: int) -> Interval | None:
        """The extent of a detected run, measured against neutral frames before and after it.

        With r0 = onset - k and r1 = offset + k (frames outside the expression), the per-cell motion
        of every frame t between them is min(|flow(r0 -> t)|, |flow(r1 -> t)|): the displacement from
        the neutral face whatever the expression's length. Its local signal (top cells minus
        median) gives the apex and, at ``edge`` of its peak, the onset and offset. A run whose eye
        regions change more than ``blink_ratio`` times the face on average at the apex is a blink
        (labelled :data:`BLINK`, so that its other scale's view is dropped too). None for a peak
        under ``min_snr`` times the motion near the references, or an interval shorter than
        ``min_duration``.
        """
        c, fps = self.cfg, self.fps
        first = self.faces - len(self._buffer)
        r0, r1 = max(on - k, self._segment, first), min(off + k, self.faces - 1)
        step = max(1, int(round(fps / 100)))  # at most 100 flows per second of video
        ts = list(range(r0, r1 + 1, step))
        if len(ts) < 3:
            return None
        motion = self.motion["micro"]
        ref0, ref1 = self._buffer[r0 - first], self._buffer[r1 - first]

        def against(m: MotionSignal, ref: np.ndarray) -> np.ndarray:  # (T, grid * grid) motion from ref
            d = np.stack([m.residual_cells(ref, self._buffer[t - first]) for t in ts])
            return np.hypot(d[..., 0], d[..., 1])

        pairs = ((self.motion["micro"], ref0), (self.motion["macro"], ref1))  # each scale's own DIS instance
        d0, d1 = (self._pool.map(lambda a: against(*a), pairs) if self._pool is not None
                  else (against(*a) for a in pairs))
        mags = np.minimum(d0, d1)                               # (T, grid * grid)
        face_cells = mags[:, motion.cell_mask]
        n_top = motion._top
        top = np.sort(face_cells, axis=1)[:, -n_top:].mean(1)
        p = top - np.median(face_cells, axis=1)
        inside = [i for i, t in enumerate(ts) if on <= t <= off] or [int(np.argmin(np.abs(np.array(ts) - apex)))]
        a = inside[int(np.argmax(p[inside]))]  # the apex of this run, not of a neighbour in r0..r1
        level = c.edge * p[a]
        i0 = a
        while i0 > 0 and p[i0 - 1] > level:
            i0 -= 1
        i1 = a
        while i1 < len(p) - 1 and p[i1 + 1] > level:
            i1 += 1
        onset, apex_t, offset = ts[i0], ts[a], min(ts[i1] + step - 1, r1)
        at = self._buffer[ts[a] - first].astype(np.int16)
        change = np.minimum(np.abs(at - ref0), np.abs(at - ref1))   # grey levels, against both references
        eyes = float(change[self._eye_pixels].mean()) / max(float(change[self._face_pixels].mean()), 1.0)
        q = max(1, len(p) // 5)  # the fifths nearest the references: how still the face is there
        snr = p[a] / max(float(np.median(np.abs(np.concatenate([p[:q], p[-q:]])))), 1e-3)
        kind = "micro" if offset - onset + 1 <= c.max_micro * fps else "macro"
        self.last_features = candidate_features(snr, eyes, (offset - onset + 1) / fps, p[a], top[a], score,
                                                k == self.k["micro"], kind == "micro", fps)
        if eyes > c.blink_ratio:  # returned as such: the same movement seen at the other scale is dropped too
            return Interval(int(onset), int(apex_t), int(offset), kind, round(float(snr), 2), BLINK)
        if (offset - onset + 1) < 2:
            return None
        if self.stage is not None:  # the learned second stage instead of min_snr and min_duration
            prob = self.stage.probability(self.last_features)
            return Interval(int(onset), int(apex_t), int(offset), kind, round(prob, 4)) \
                if prob >= self.stage.threshold else None
        if snr < c.min_snr or (offset - onset + 1) < max(2, c.min_duration * fps):
            return None
        return Interval(int(onset), int(apex_t), int(offset), kind, round(float(snr), 2))


def spot_frames(frames: Iterable[np.ndarray], fps: float, cfg: SpotConfig | None = None,
                landmarker=None) -> tuple[list[Interval], Spotter]:
    """Spot every interval of a whole video: (H, W, 3) uint8 RGB frames in order.

    Returns:
        (intervals sorted by onset, the spotter with its signals).
    """
    spotter = Spotter(fps, cfg, landmarker)
    out = []
    for frame in frames:
        out += spotter.push(frame)
    out += spotter.finish()
    return sorted(out, key=lambda i: i.onset), spotter
