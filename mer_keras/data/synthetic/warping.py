"""Facial actions as image warps: AU -> landmark displacements -> dense field -> warped image.

Each FACS action unit moves a set of mediapipe landmarks along a face-relative direction (in
inter-ocular-distance units, table :data:`AU_MOTION`); the motion spreads to neighbouring
landmarks with a Gaussian fall-off (:func:`landmark_displacements`), becomes a dense field by
piecewise-affine interpolation over the landmarks' Delaunay triangulation plus zero-motion
image-border points (:func:`dense_field`), and the image is resampled by ``cv2.remap``
(:func:`warp`). The identity morphs of :mod:`mer_keras.data.synthetic.faces` use the same field
and warp.
"""

from __future__ import annotations

import cv2
import numpy as np

from mer_keras.data.synthetic.mesh import (
    CHEEK,
    CHIN,
    INNER_BROW,
    LIP_CORNER,
    LOWER_LID,
    LOWER_LIP,
    MID_BROW,
    NASOLABIAL,
    NEAR_CORNER,
    NOSE_WING,
    OUTER_BROW,
    UPPER_LID,
    UPPER_LIP,
    face_axes,
)
from mer_keras.preprocess import portable

#: AU -> list of (landmarks, (outward, downward)) in inter-ocular distances at full intensity;
#: "outward" is away from the facial midline, "downward" towards the chin.
AU_MOTION: dict[str, tuple[tuple[tuple[int, ...], tuple[float, float]], ...]] = {
    "AU1": ((INNER_BROW, (0.0, -1.0)), (MID_BROW, (0.0, -0.5))),
    "AU2": ((OUTER_BROW, (0.0, -1.0)), (MID_BROW, (0.0, -0.5))),
    "AU4": ((INNER_BROW, (-0.6, 0.6)), (MID_BROW, (-0.3, 0.8)), (OUTER_BROW, (0.0, 0.5))),
    "AU5": ((UPPER_LID, (0.0, -0.8)),),
    "AU6": ((CHEEK, (0.0, -0.8)), (LOWER_LID, (0.0, -0.5))),
    "AU7": ((LOWER_LID, (0.0, -0.8)), (UPPER_LID, (0.0, 0.3))),
    "AU9": ((NOSE_WING, (0.0, -1.0)), (INNER_BROW, (0.0, 0.4)), (UPPER_LIP, (0.0, -0.3))),
    "AU10": ((UPPER_LIP, (0.0, -1.0)), (NOSE_WING, (0.0, -0.3))),
    "AU12": ((LIP_CORNER, (0.7, -0.7)), (NASOLABIAL, (0.3, -0.4)), (CHEEK, (0.0, -0.3))),
    "AU14": ((LIP_CORNER, (0.8, 0.0)), (NEAR_CORNER, (0.4, 0.0))),
    "AU15": ((LIP_CORNER, (0.1, 1.0)), (NEAR_CORNER, (0.0, 0.6))),
    "AU17": ((CHIN, (0.0, -1.0)), (LOWER_LIP, (0.0, -0.6))),
    "AU26": ((LOWER_LIP, (0.0, 1.0)), (CHIN, (0.0, 1.0)), (LIP_CORNER, (0.0, 0.4))),
    "AU45": ((UPPER_LID, (0.0, 1.0)), (LOWER_LID, (0.0, -0.15))),
}


def landmark_displacements(landmarks: np.ndarray, aus: dict[str, float], sigma: float = 0.12) -> np.ndarray:
    """Displacement of each landmark for a weighted set of AUs.

    Args:
        landmarks: (468, 2) float landmarks in pixels.
        aus: {AU name: intensity}; intensity 1 moves the AU's anchors by the vectors of
            :data:`AU_MOTION` times the inter-ocular distance.
        sigma: Gaussian fall-off radius, inter-ocular distances.

    Returns:
        (468, 2) float32 displacements in pixels.
    """
    mid, ex, ey, iod = face_axes(landmarks)
    side = np.sign(portable.matmul(landmarks - mid, ex))
    sparse = np.zeros_like(landmarks, dtype=np.float64)
    weight = np.zeros(len(landmarks))
    for au, intensity in aus.items():
        for idx, (out, down) in AU_MOTION[au]:
            idx = list(idx)
            vec = (out * side[idx, None] * ex[None] + down * ey[None]) * iod * intensity
            sparse[idx] += vec
            weight[idx] = 1.0
    anchors = np.flatnonzero(weight)
    if anchors.size == 0:
        return np.zeros_like(landmarks, dtype=np.float32)
    d2 = ((landmarks[:, None, :] - landmarks[None, anchors, :]) ** 2).sum(-1) / (sigma * iod) ** 2
    k = portable.exp(-0.5 * d2)
    spread = portable.matmul(k, sparse[anchors]) / np.maximum(1.0, k.sum(1))[:, None]
    return spread.astype(np.float32)


def _triangulation(landmarks: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel of an (H, W) image, the Delaunay triangle of the landmarks and image-border points
    it lies in, and its barycentric weights there: ((H*W, 3) vertex indices, (H*W, 3) float64 weights).

    The landmarks of a pseudo-subject are the same for every field of its clips, so the last few
    triangulations are kept. The weights are computed element-wise (no BLAS, no LAPACK), the same
    bits on every CPU; scipy's ``find_simplex`` is used in its brute-force mode, which was 18 times
    faster than its directed walk on face-mesh landmarks (scipy 1.17).
    """
    from scipy.spatial import Delaunay

    key = (landmarks.astype(np.float64).tobytes(), tuple(shape))
    if key in _TRIANGULATIONS:
        return _TRIANGULATIONS[key]
    h, w = shape
    border = np.array([(x, y) for x in np.linspace(0, w - 1, 9) for y in (0, h - 1)]
                      + [(x, y) for y in np.linspace(0, h - 1, 9)[1:-1] for x in (0, w - 1)], np.float64)
    pts = np.vstack([landmarks.astype(np.float64), border])
    tri = Delaunay(pts)
    gy, gx = np.mgrid[0:h, 0:w]
    q = np.column_stack([gx.ravel(), gy.ravel()]).astype(np.float64)
    simplex = tri.find_simplex(q, bruteforce=True)
    inside = simplex >= 0  # the border points make the hull the whole image; kept general
    vertices = tri.simplices[np.where(inside, simplex, 0)]
    a, b, c = (pts[vertices[:, i]] for i in range(3))

    def cross(u, v):
        return u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]

    area = cross(b - a, c - a)
    weights = np.stack([cross(b - q, c - q) / area, cross(c - q, a - q) / area, cross(a - q, b - q) / area], 1)
    weights[~inside] = 0.0
    if len(_TRIANGULATIONS) >= 8:
        _TRIANGULATIONS.pop(next(iter(_TRIANGULATIONS)))
    _TRIANGULATIONS[key] = (vertices, weights)
    return vertices, weights


_TRIANGULATIONS: dict = {}


def dense_field(landmarks: np.ndarray, displacements: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Piecewise-affine dense displacement field through the landmarks.

    Args:
        landmarks: (N, 2) control points in pixels; displacements: (N, 2) pixels at those points.
        shape: (H, W) of the output field.
    Returns:
        (H, W, 2) float32 displacement (dx, dy) in pixels, zero at the image border: linear
        inside each Delaunay triangle of the landmarks and 32 image-border points.
    """
    h, w = shape
    vertices, weights = _triangulation(landmarks, shape)
    vals = np.vstack([displacements.astype(np.float64), np.zeros((32, 2))])[vertices]  # (H*W, 3, 2)
    field = (weights[:, 0, None] * vals[:, 0] + weights[:, 1, None] * vals[:, 1]
             + weights[:, 2, None] * vals[:, 2]).reshape(h, w, 2).astype(np.float32)
    return cv2.GaussianBlur(field, (0, 0), sigmaX=1.5)


def warp(image: np.ndarray, field: np.ndarray, affine: np.ndarray | None = None) -> np.ndarray:
    """Render ``image`` with points moved by ``field`` (pixels), then an optional 2x3 affine.

    Backward mapping with the small-displacement approximation: out(x) = image(x - field(x)).
    """
    h, w = field.shape[:2]
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    mx, my = gx, gy
    if affine is not None:  # out(x) = image(A^-1 x): invert the (near-identity) affine
        inv = cv2.invertAffineTransform(affine)
        mx = inv[0, 0] * gx + inv[0, 1] * gy + inv[0, 2]
        my = inv[1, 0] * gx + inv[1, 1] * gy + inv[1, 2]
    mx = (mx - field[..., 0]).astype(np.float32)
    my = (my - field[..., 1]).astype(np.float32)
    return cv2.remap(image, mx, my, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
