"""Dynamic image by approximate rank pooling.

Source: H. Bilen, B. Fernando, E. Gavves, A. Vedaldi, S. Gould, "Dynamic Image Networks for
Action Recognition", CVPR 2016, Eq. (4): the approximate rank-pooling coefficients
alpha_t = 2(T - t + 1) - (T + 1)(H_T - H_{t-1}), t = 1..T, H_t the t-th harmonic number
(H_0 = 0). The dynamic image is sum_t alpha_t * frame_t, computed per channel.
"""

from __future__ import annotations

import numpy as np

from mer_keras.errors import DataError


def rank_pooling_coefficients(num_frames: int) -> np.ndarray:
    """Approximate rank-pooling weights alpha_1..alpha_T (Bilen et al. 2016, Eq. 4).

    Args:
        num_frames: T >= 2.
    Returns:
        (T,) float64 coefficients; they sum to 0, so a static clip gives an all-zero image.
    Raises:
        DataError: if T < 2.
    """
    if num_frames < 2:
        raise DataError(f"a dynamic image needs at least 2 frames, got {num_frames}")
    T = num_frames
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, T + 1))])  # H_0..H_T
    t = np.arange(1, T + 1)
    return 2.0 * (T - t + 1) - (T + 1) * (harmonic[T] - harmonic[t - 1])


def dynamic_image(frames: np.ndarray) -> np.ndarray:
    """Approximate rank pooling of a clip into one image.

    Args:
        frames: (T, H, W, C) float32 or uint8 clip, T >= 2, in temporal order (onset first).

    Returns:
        (H, W, C) float32 dynamic image, not normalised (see :func:`scale_to_uint8_range`).

    Raises:
        DataError: if T < 2, the array is not 4-D, a side is 0, or the values are not real
            finite numbers.

    Source: Bilen et al., CVPR 2016, Eq. (4).
    """
    frames = np.asarray(frames)
    if frames.ndim != 4:
        raise DataError(f"expected a (T, H, W, C) clip, got shape {frames.shape}")
    if 0 in frames.shape[1:]:
        raise DataError(f"expected a (T, H, W, C) clip with non-empty frames, got shape {frames.shape}")
    if not (np.issubdtype(frames.dtype, np.number) or frames.dtype == np.bool_) or np.iscomplexobj(frames):
        raise DataError(f"expected a clip of real numbers, got dtype {frames.dtype}")
    alpha = rank_pooling_coefficients(frames.shape[0]).astype(np.float32)
    frames = frames.astype(np.float32)
    if not np.isfinite(frames).all():
        raise DataError("the clip holds NaN or infinite values; a dynamic image needs finite frames")
    return np.tensordot(alpha, frames, axes=(0, 0))


def scale_to_uint8_range(image: np.ndarray) -> np.ndarray:
    """Min-max scale a dynamic image to [0, 255] over all its pixels and channels (as Bilen's code).

    Args:
        image: (H, W, C) float array.
    Returns:
        (H, W, C) float32 in [0, 255]; a constant image maps to all zeros.
    """
    image = np.asarray(image, dtype=np.float32)
    lo, hi = float(image.min()), float(image.max())
    if hi - lo < 1e-12:
        return np.zeros_like(image)
    if hi - lo > np.finfo(np.float32).max:  # image - lo would overflow float32: scale in float64
        return np.clip((image.astype(np.float64) - lo) * (255.0 / (hi - lo)), 0.0, 255.0).astype(np.float32)
    return np.clip((image - lo) * (255.0 / (hi - lo)), 0.0, 255.0)  # clip: rounding can overshoot 255
