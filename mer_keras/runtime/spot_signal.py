"""The spotter's per-frame motion signal: steps 1-4 of :mod:`mer_keras.runtime.spotting`'s method.

Where motion is measured on the aligned face (:func:`face_masks`, :func:`eye_cells`), the aligned,
gain-normalised grey face of each frame (:class:`FaceTracker`), and the two-reference, local motion
of one scale k (:class:`MotionSignal`). TF-free: numpy, OpenCV and :mod:`mer_keras.preprocess`.
"""

from __future__ import annotations

from collections import deque

import cv2
import numpy as np

from mer_keras.preprocess import portable
from mer_keras.runtime.spot_config import SpotConfig

#: Eye regions of the aligned face, as fractions of its side: (x0, y0, x1, y1). The face mesh puts
#: the eye contours at x 0.24-0.40 / 0.60-0.76 and y 0.33-0.38 (:data:`~mer_keras.preprocess.face.EYE_HEIGHT`).
EYE_BOXES = ((0.20, 0.29, 0.44, 0.43), (0.56, 0.29, 0.80, 0.43))
#: The face in the aligned crop: an ellipse (centre x, centre y, radius x, radius y), fractions of the side.
FACE_ELLIPSE = (0.5, 0.54, 0.40, 0.46)


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
    """Per-frame motion of one scale k (steps 2-4 of :mod:`mer_keras.runtime.spotting`), as a stream.

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

