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

Limits: one face; a face lost for a while restarts the signal (no interval spans the gap); an
expression longer than 2 x ``macro_k`` is cut; a micro-expression during a macro-expression is
not reported.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, fields

import cv2
import numpy as np

from mer_keras.preprocess import portable
from mer_keras.runtime.intervals import Interval
from mer_keras.runtime.spot_stage import candidate_features, load_stage

#: Eye regions of the aligned face, as fractions of its side: (x0, y0, x1, y1). The face mesh puts
#: the eye contours at x 0.24-0.40 / 0.60-0.76 and y 0.33-0.38 (:data:`~mer_keras.preprocess.face.EYE_HEIGHT`).
EYE_BOXES = ((0.20, 0.29, 0.44, 0.43), (0.56, 0.29, 0.80, 0.43))
#: Label of a candidate :meth:`Spotter._refine` found to be a blink (never reported).
BLINK = "blink"
#: The face in the aligned crop: an ellipse (centre x, centre y, radius x, radius y), fractions of the side.
FACE_ELLIPSE = (0.5, 0.54, 0.40, 0.46)


#: How a candidate is kept: the analytic rules, or the learned second stage (:mod:`~mer_keras.runtime.spot_stage`).
METHODS = ("analytic", "learned")


@dataclass(frozen=True)
class SpotConfig:
    """Parameters of the spotter (units as stated; see the module docstring for their roles).

    Attributes:
        size: side of the aligned grey face, px. grid: cells per side of the motion grid.
        micro_k, macro_k: reference distance k of the two scales, s.
        max_micro: longest micro-expression, s (MEGC: 0.5). min_duration: shortest interval kept, s.
        top: fraction of face cells averaged into the signal.
        smooth: moving-average width of the signal, s.
        z: threshold in robust standard deviations (1.4826 MAD) above the median.
        edge: onset and offset where the signal is back to this fraction of the peak height.
        blink_ratio: a candidate whose eye regions change (grey levels) this many times more than the
            face on average is a blink.
        min_snr: a candidate's peak must be this many times the motion near its neutral references.
        history: seconds of signal the threshold is computed over (a trailing window).
        landmark_every: seconds between face-mesh runs.
        method: ``"analytic"`` keeps a candidate by ``min_snr`` and ``min_duration``; ``"learned"``
            by the logistic regression of :mod:`mer_keras.runtime.spot_stage` (the packaged one,
            or ``learned_model``, a JSON file written by ``tools/fit_spotter.py``).
    Raises:
        ValueError: a value out of range, or a second stage that cannot be read (its file named).
    """

    size: int = 128
    grid: int = 32
    micro_k: float = 0.3
    macro_k: float = 1.0
    max_micro: float = 0.5
    min_duration: float = 0.08
    top: float = 0.05
    smooth: float = 0.04
    z: float = 4.0
    edge: float = 0.2
    history: float = 60.0
    landmark_every: float = 0.1
    blink_ratio: float = 4.5
    min_snr: float = 5.0
    method: str = "analytic"
    learned_model: str | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"spotting method {self.method!r}: expected one of {', '.join(METHODS)}")
        if self.learned_model is not None and self.method != "learned":
            raise ValueError("a learned_model is for method 'learned'")
        if self.method == "learned":
            load_stage(self.learned_model)  # a bad second stage is named here, before any frame is read
        for name in ("size", "grid"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 < value <= 4096:
                raise ValueError(f"spotting parameter {name} must be a whole number from 1 to 4096, got {value!r}")
        if self.size < 32 or self.grid < 4 or self.size % self.grid:
            raise ValueError(f"spotting needs size >= 32 divisible by grid >= 4, got size {self.size}, "
                             f"grid {self.grid}")
        for name in ("micro_k", "macro_k", "max_micro", "smooth", "z", "history", "landmark_every", "blink_ratio",
                     "min_snr"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)
                    and value > 0):
                raise ValueError(f"spotting parameter {name} must be a finite number > 0, got {value!r}")
        value = self.min_duration
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)
                and value >= 0):
            raise ValueError(f"spotting parameter min_duration must be a finite number >= 0, got {value!r}")
        if not 0 < self.top <= 1 or not 0 < self.edge < 1:
            raise ValueError(f"spotting top must be in (0, 1] and edge in (0, 1), got {self.top}, {self.edge}")
        if self.macro_k <= self.micro_k:
            raise ValueError(f"macro_k ({self.macro_k} s) must be longer than micro_k ({self.micro_k} s)")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> SpotConfig:
        """A config from recorded values (unknown keys ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    def frames(self, seconds: float, fps: float) -> int:
        """``seconds`` at ``fps`` as a whole number of frames, at least 1."""
        return max(1, int(round(seconds * fps)))

    def shortest_video(self) -> float:
        """Seconds a video needs for anything to be spotted: ``macro_k`` of context before and after
        an event (the macro scale compares frames ``macro_k`` apart) and a neutral second for the
        threshold, which is relative to the video's own motion."""
        return 2 * self.macro_k + 1.0

    def why_nothing(self, frames: int, fps: float, no_face: int) -> str:
        """One line saying why a video gave no interval, and what to try.

        Args:
            frames: frames read. fps: their rate. no_face: frames without a face (or without the
                signal's context at the video's ends).
        """
        seconds = frames / fps if fps else 0.0
        if seconds < self.shortest_video():
            return (f"nothing spotted: the video is {seconds:.2f} s ({frames} frames at {fps:g} fps); spotting needs "
                    f"at least {self.shortest_video():g} s ({self.macro_k:g} s of context on each side of an "
                    "expression and neutral stretches for its threshold): give a longer video, or classify it as "
                    "one clip (predict without --spot, edge.run --mode windows)")
        if no_face >= frames - 2 * self.frames(self.macro_k, fps):
            return (f"nothing spotted: no face was found in {no_face} of the {frames} frames: check that one face "
                    "is visible, frontal and lit")
        return ("nothing spotted: no facial motion rose above the spotting threshold (the video's median motion + "
                f"{self.z:g} MADs, and {self.min_snr:g} x the motion near each candidate's neutral references): "
                "the face may be still; `mer-keras spot --min-snr 3` finds weaker motion (and more false intervals)")


def face_masks(size: int, grid: int) -> tuple[np.ndarray, np.ndarray]:
    """Where motion is measured on the aligned face.

    Returns:
        (pixels, cells): (size, size) bool, the face without the eyes (the affine fit), and
        (grid, grid) bool, the cells whose centre is in it (the signal).
    """
    def inside(x, y):
        cx, cy, rx, ry = FACE_ELLIPSE
        face = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1
        for x0, y0, x1, y1 in EYE_BOXES:
            face &= ~((x >= x0) & (x <= x1) & (y >= y0) & (y <= y1))
        return face

    p = (np.arange(size) + 0.5) / size
    c = (np.arange(grid) + 0.5) / grid
    return inside(p[None, :], p[:, None]), inside(c[None, :], c[:, None])


def eye_cells(size: int, grid: int) -> np.ndarray:
    """(grid, grid) bool: the cells whose centre lies in an eye region (:data:`EYE_BOXES`)."""
    c = (np.arange(grid) + 0.5) / grid
    x, y = c[None, :], c[:, None]
    out = np.zeros((grid, grid), bool)
    for x0, y0, x1, y1 in EYE_BOXES:
        out |= (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
    return out


class FaceTracker:
    """Aligned, gain-normalised grey faces from raw frames; the face mesh runs every ``landmark_every``
    seconds (also while no face is found, so a camera facing nobody does not run it every frame).

    Args:
        cfg: the spotting config (``size``, ``landmark_every``). fps: frame rate of the stream.
        landmarker: callable(RGB image) -> (468, 2) landmarks or None (default: the thread's
            :func:`~mer_keras.preprocess.face.get_landmarker`).
    """

    def __init__(self, cfg: SpotConfig, fps: float, landmarker=None):
        self.cfg, self.every = cfg, cfg.frames(cfg.landmark_every, fps)
        self._landmarker = landmarker
        self.landmarks: np.ndarray | None = None
        self.matrix: np.ndarray | None = None
        self._count = 0
        self._mask = face_masks(cfg.size, cfg.grid)[0]

    def __call__(self, frame: np.ndarray) -> np.ndarray | None:
        """(size, size) uint8 aligned grey face of an (H, W, 3) uint8 RGB frame, or None without a face."""
        from mer_keras.preprocess.face import alignment_matrix, get_landmarker

        if self._count % self.every == 0:  # also while no face is seen: the mesh is the costly step
            landmarks = (self._landmarker or get_landmarker())(frame)
            if landmarks is not None:
                self.landmarks, self.matrix = landmarks, alignment_matrix(landmarks, self.cfg.size)
            else:
                self.landmarks = self.matrix = None  # the face is gone: do not align on a stale pose
        self._count += 1
        if self.matrix is None:
            return None
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame
        face = cv2.warpAffine(grey, self.matrix, (self.cfg.size, self.cfg.size), flags=cv2.INTER_AREA,
                              borderMode=cv2.BORDER_REFLECT)
        mean = float(face[self._mask].mean())
        return cv2.convertScaleAbs(face, alpha=110.0 / max(mean, 1.0))


class MotionSignal:
    """Per-frame motion of one scale k (steps 2-4 of the module docstring), as a stream.

    :meth:`push` takes the aligned grey face of the next frame and returns the signal of the frame
    k frames back (the two-reference motion needs the future frame t+k), or None while it cannot
    be computed yet. Values are in pixels of the aligned face.
    """

    def __init__(self, cfg: SpotConfig, k: int):
        self.k, self.cfg = k, cfg
        self.faces: deque = deque(maxlen=k + 1)
        self.cells: deque = deque(maxlen=k + 1)   # F_k(t) per cell, (C, 2)
        _, cells = face_masks(cfg.size, cfg.grid)
        self.cell_mask = cells.ravel()
        c = (np.arange(cfg.grid) + 0.5) / cfg.grid - 0.5   # cell centres; an affine's cell mean is its centre value
        self._basis = np.stack([np.tile(c, cfg.grid), np.repeat(c, cfg.grid), np.ones(cfg.grid ** 2)], 1)  # (C, 3)
        # (3, face cells): least-squares affine, without LAPACK or BLAS: the same bits on every CPU
        self._pinv = portable.least_squares_projector(self._basis[self.cell_mask])
        self._top = max(1, int(round(cfg.top * self.cell_mask.sum())))
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)

    def reset(self) -> None:
        """Forget the past (the face was lost)."""
        self.faces.clear()
        self.cells.clear()

    def residual_cells(self, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        """(grid * grid, 2) float32 non-rigid flow from ``before`` to ``after``, averaged per cell (all cells)."""
        flow = self._dis.calc(before, after, None)
        g = self.cfg.grid
        cells = cv2.resize(flow, (g, g), interpolation=cv2.INTER_AREA).reshape(-1, 2)
        coef = portable.matmul(self._pinv, cells[self.cell_mask])         # (3, 2): the affine motion of the face
        return (cells - portable.matmul(self._basis, coef)).astype(np.float32)

    def push(self, face: np.ndarray) -> float | None:
        """Add the next aligned face; the signal of the frame ``k`` back, or None."""
        self.faces.append(face)
        if len(self.faces) <= self.k:
            return None
        self.cells.append(self.residual_cells(self.faces[0], face)[self.cell_mask])
        if len(self.cells) <= self.k:
            return None
        past, future = self.cells[0], self.cells[-1]   # F(t) and F(t + k) for t = k frames back
        m = np.minimum(np.minimum(np.hypot(past[:, 0], past[:, 1]), np.hypot(future[:, 0], future[:, 1])),
                       0.5 * np.hypot(past[:, 0] - future[:, 0], past[:, 1] - future[:, 1]))
        top = np.partition(m, len(m) - self._top)[-self._top:]
        return float(top.mean() - np.median(m))


def robust_threshold(values: np.ndarray, z: float) -> tuple[float, float]:
    """(median, median + z * 1.4826 * MAD) of the finite ``values``; (0, inf) when there are none."""
    v = values[np.isfinite(values)]
    if v.size == 0:
        return 0.0, float("inf")
    med = float(np.median(v))
    mad = float(np.median(np.abs(v - med)))
    return med, med + z * 1.4826 * max(mad, 1e-6)


def find_intervals(signal: np.ndarray, start: int, stop: int, baseline: float, threshold: float,
                   edge: float) -> list[tuple[int, int, int, float]]:
    """Runs of ``signal[start:stop]`` above ``threshold``, each as (onset, apex, offset, peak / threshold).

    The apex is the run's maximum; onset and offset extend outwards, within ``start..stop-1``
    (NaN stops them), while the signal stays above ``baseline + edge * (peak - baseline)``. Runs
    whose extents overlap are merged. Indices are into ``signal``.
    """
    s = np.nan_to_num(np.asarray(signal[:stop], np.float64), nan=-np.inf)
    above = s[start:] > threshold
    out: list[list] = []
    i = 0
    while i < len(above):
        if not above[i]:
            i += 1
            continue
        j = i
        while j < len(above) and above[j]:
            j += 1
        apex = start + i + int(np.argmax(s[start + i:start + j]))
        level = baseline + edge * (s[apex] - baseline)
        on = apex
        while on > start and s[on - 1] > level:
            on -= 1
        off = apex
        while off < len(s) - 1 and s[off + 1] > level:
            off += 1
        score = float(s[apex] / threshold) if threshold > 0 else float("inf")
        if out and on <= out[-1][2]:  # overlaps the previous run's extent: one expression
            prev = out[-1]
            if s[apex] > s[prev[1]]:
                prev[1], prev[3] = apex, score
            prev[2] = max(prev[2], off)
        else:
            out.append([on, apex, off, score])
        i = max(j, off + 1)
    return [tuple(x) for x in out]


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


def iter_events(spotter: Spotter, frames: Iterable[np.ndarray]) -> Iterator[tuple[int, list[Interval]]]:
    """For each frame pushed: (its index, the intervals it closed)."""
    for i, frame in enumerate(frames):
        yield i, spotter.push(frame)
