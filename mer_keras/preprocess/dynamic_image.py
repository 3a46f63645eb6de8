"""Dynamic image by approximate rank pooling.

Source: H. Bilen, B. Fernando, E. Gavves, A. Vedaldi, S. Gould, "Dynamic Image Networks for
Action Recognition", CVPR 2016, Eq. (4): the approximate rank-pooling coefficients
alpha_t = 2(T - t + 1) - (T + 1)(H_T - H_{t-1}) = sum_{i=t..T} (2i - T - 1) / i, t = 1..T,
H_t the t-th harmonic number (H_0 = 0). The dynamic image is sum_t alpha_t * frame_t, computed
per channel.

LEARNet's authors (Verma et al., TIP 2019) released a ``dynamicimage.py`` whose weights are
sum_{i=t..T} (2i - T) / i = 2(T - t + 1) - T (H_T - H_{t-1}) (``weighting="authors"``). They
sum to T instead of 0, so their image is Bilen's plus sum_t (H_T - H_{t-1}) frame_t: a
positively weighted mean of the frames (weights 1 for the last frame up to H_T for the first),
that is, mostly an appearance image with the motion on top.
"""

from __future__ import annotations

import numpy as np

from mer_keras.errors import DataError, OptionError
from mer_keras.names import DI_WEIGHTINGS as WEIGHTINGS  # noqa: F401  (re-exported)
from mer_keras.preprocess import portable

#: Rank-pooling weightings: ``bilen`` (Bilen et al. 2016, Eq. 4; the default) and ``authors``
#: (LEARNet's released ``dynamicimage.py``).


def rank_pooling_coefficients(num_frames: int, weighting: str = "bilen") -> np.ndarray:
    """Approximate rank-pooling weights alpha_1..alpha_T.

    Args:
        num_frames: T >= 2.
        weighting: ``bilen``: alpha_t = 2(T - t + 1) - (T + 1)(H_T - H_{t-1}) (Bilen et al.
            2016, Eq. 4); ``authors``: 2(T - t + 1) - T (H_T - H_{t-1}), the sum over
            i = t..T of (2i - T) / i in LEARNet's released ``dynamicimage.py``.
    Returns:
        (T,) float64 coefficients. Bilen's sum to 0, so a static clip gives an all-zero image;
        the authors' sum to T, so a static clip gives T times its frame.
    Raises:
        DataError: if T < 2. OptionError: an unknown weighting.
    """
    if weighting not in WEIGHTINGS:
        raise OptionError(f"unknown dynamic-image weighting {weighting!r}; expected one of {WEIGHTINGS}")
    if num_frames < 2:
        raise DataError(f"a dynamic image needs at least 2 frames, got {num_frames}")
    T = num_frames
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, T + 1))])  # H_0..H_T
    t = np.arange(1, T + 1)
    scale = T + 1 if weighting == "bilen" else T
    return 2.0 * (T - t + 1) - scale * (harmonic[T] - harmonic[t - 1])


def dynamic_image(frames: np.ndarray, weighting: str = "bilen") -> np.ndarray:
    """Approximate rank pooling of a clip into one image.

    Args:
        frames: (T, H, W, C) float32 or uint8 clip, T >= 2, in temporal order (onset first).
        weighting: ``bilen`` (default) or ``authors`` (see :func:`rank_pooling_coefficients`).

    Returns:
        (H, W, C) float32 dynamic image, not normalised (see :func:`scale_to_uint8_range`).

    Raises:
        DataError: if T < 2, the array is not 4-D, a side is 0, or the values are not real
            finite numbers. OptionError: an unknown weighting.

    Source: Bilen et al., CVPR 2016, Eq. (4); Verma et al., TIP 2019, released code.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4:
        raise DataError(f"expected a (T, H, W, C) clip, got shape {frames.shape}")
    if 0 in frames.shape[1:]:
        raise DataError(f"expected a (T, H, W, C) clip with non-empty frames, got shape {frames.shape}")
    if not (np.issubdtype(frames.dtype, np.number) or frames.dtype == np.bool_) or np.iscomplexobj(frames):
        raise DataError(f"expected a clip of real numbers, got dtype {frames.dtype}")
    alpha = rank_pooling_coefficients(frames.shape[0], weighting)
    if not np.isfinite(frames).all():
        raise DataError("the clip holds NaN or infinite values; a dynamic image needs finite frames")
    # summed in float64 in frame order, not by a BLAS product: the same bits on every CPU
    return portable.weighted_sum(alpha, frames).astype(np.float32)


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
