"""Onset -> apex optical flow and optical strain.

Flow methods (OpenCV): ``tvl1`` (Zach, Pock, Bischof, "A duality based approach for realtime
TV-L1 optical flow", DAGM 2007; ``cv2.optflow.DualTVL1OpticalFlow`` from opencv-contrib; the
usual choice in MER, e.g. Liong et al. STSTNet, FG 2019), ``farneback`` (Farneback, SCIA 2003)
and ``dis`` (Kroeger et al., ECCV 2016).

Optical strain (Shreve et al., FG 2011; as used in Liong et al. 2019): with u, v the flow
components, the strain tensor is e_xx = du/dx, e_yy = dv/dy, e_xy = e_yx = (du/dy + dv/dx) / 2,
and the strain magnitude is sqrt(e_xx^2 + e_yy^2 + 2 e_xy^2).
"""

from __future__ import annotations

import cv2
import numpy as np

from mer_keras.errors import DataError, OptionError
from mer_keras.names import (
    FLOW_ENCODINGS,  # noqa: F401  (re-exported)
    FLOW_METHODS,  # noqa: F401  (re-exported)
)

#: Smallest frame side the flow methods accept (OpenCV's DIS refuses images under 12 pixels).
MIN_FLOW_SIDE = 12


def _gray(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image.astype(np.uint8) if image.dtype != np.uint8 else image, cv2.COLOR_RGB2GRAY)
    elif image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim != 2:
        raise DataError(f"expected an (H, W) or (H, W, 1|3) image, got shape {image.shape}")
    if min(image.shape) < MIN_FLOW_SIDE:
        raise DataError(f"a {image.shape[1]} x {image.shape[0]} frame is too small for optical flow "
                        f"(at least {MIN_FLOW_SIDE} x {MIN_FLOW_SIDE} pixels)")
    return image.astype(np.uint8) if image.dtype != np.uint8 else image


def optical_flow(onset: np.ndarray, apex: np.ndarray, method: str = "tvl1") -> np.ndarray:
    """Dense optical flow from the onset frame to the apex frame.

    Args:
        onset, apex: (H, W) or (H, W, 3) uint8 RGB frames of the same size (aligned faces).
        method: one of :data:`FLOW_METHODS`.

    Returns:
        (H, W, 2) float32 flow (u, v) in pixels: apex(x + u, y + v) ~ onset(x, y).

    Raises:
        OptionError: unknown method. DataError: frames of different shapes, of another layout,
            or smaller than :data:`MIN_FLOW_SIDE` pixels.
    """
    a, b = _gray(onset), _gray(apex)
    if a.shape != b.shape:
        raise DataError(f"onset {a.shape} and apex {b.shape} frames differ in size")
    if method == "tvl1":
        flow = cv2.optflow.DualTVL1OpticalFlow_create().calc(a, b, None)
    elif method == "farneback":
        flow = cv2.calcOpticalFlowFarneback(a, b, None, pyr_scale=0.5, levels=3, winsize=15,
                                            iterations=3, poly_n=5, poly_sigma=1.2, flags=0)
    elif method == "dis":
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        flow = dis.calc(a, b, None)
    else:
        raise OptionError(f"unknown flow method {method!r}; expected one of {FLOW_METHODS}")
    return np.asarray(flow, dtype=np.float32)


def optical_strain(flow: np.ndarray) -> np.ndarray:
    """Optical strain magnitude from a flow field (Shreve et al. 2011).

    Args:
        flow: (H, W, 2) float flow (u, v) in pixels.
    Returns:
        (H, W) float32 strain magnitude sqrt(e_xx^2 + e_yy^2 + 2 e_xy^2), dimensionless.
    Raises:
        DataError: not an (H, W, 2) field with H, W >= 2 (the gradients need two samples).
    """
    flow = np.asarray(flow, dtype=np.float32)
    if flow.ndim != 3 or flow.shape[2] != 2 or min(flow.shape[:2]) < 2:
        raise DataError(f"expected an (H, W, 2) flow field with H, W >= 2, got shape {flow.shape}")
    u, v = flow[..., 0], flow[..., 1]
    du_dy, du_dx = np.gradient(u)
    dv_dy, dv_dx = np.gradient(v)
    e_xy = 0.5 * (du_dy + dv_dx)
    return np.sqrt(du_dx ** 2 + dv_dy ** 2 + 2.0 * e_xy ** 2).astype(np.float32)


def flow_representation(onset: np.ndarray, apex: np.ndarray, size: int = 28, method: str = "tvl1",
                        flow_scale: float = 8.0, strain_scale: float = 0.5, encoding: str = "fixed") -> np.ndarray:
    """The (u, v, strain) input image of the flow-based networks (STSTNet-style).

    Flow is computed at the frames' resolution, then area-resized to ``size``; u and v are
    scaled by size / W and size / H so they stay in output-pixel units.

    Returns:
        (size, size, 3) float32 in [0, 255], encoded as :func:`encode_flow` says for ``encoding``.
    Raises:
        OptionError, DataError: see :func:`optical_flow` and :func:`encode_flow`.
    """
    _check_encoding(size, flow_scale, strain_scale, encoding)
    flow = optical_flow(onset, apex, method)
    return encode_flow(flow, optical_strain(flow), size, flow_scale, strain_scale, encoding)


#: How u, v and strain become 0..255 values: ``fixed`` (one scale for every clip: motion keeps its
#: magnitude) or ``minmax`` (each channel of each image stretched to 0..255, as the published
#: MEGC2019 composite flow images are: STSTNet, HTNet, CausalNet).


def minmax_channels(img: np.ndarray) -> np.ndarray:
    """Stretch each channel of an (H, W, C) image to 0..255 (255 (x - min) / (max - min)); a constant
    channel becomes 0, as ``cv2.normalize(..., 0, 255, cv2.NORM_MINMAX)`` makes it. Returns float32."""
    img = np.asarray(img, np.float32)
    lo, hi = img.min(axis=(0, 1), keepdims=True), img.max(axis=(0, 1), keepdims=True)
    span = hi - lo
    return np.where(span > 0, 255.0 * (img - lo) / np.where(span > 0, span, 1.0), 0.0).astype(np.float32)


def encode_flow(flow: np.ndarray, strain: np.ndarray, size: int, flow_scale: float = 8.0,
                strain_scale: float = 0.5, encoding: str = "fixed") -> np.ndarray:
    """Area-resize a flow field and its strain to ``size`` and encode them as an image.

    Args:
        flow: (H, W, 2) float32 (u, v) in pixels of that grid. strain: (H, W) float32, unitless.
        encoding: ``fixed``: u and v rescaled to output pixels, then 127.5 + 127.5 * clip(u /
            flow_scale, -1, 1); strain as 255 * clip(strain / strain_scale, 0, 1). ``minmax``: each
            of u, v, strain of the resized image stretched to exactly 0..255 (:func:`minmax_channels`),
            the published composite's encoding (every one of its 442 images spans 0..255 in every
            channel at 28 x 28); the scales are unused.
    Returns:
        (size, size, 3) float32 in [0, 255].
    Raises:
        OptionError: size < 1, scales not > 0, an unknown encoding. DataError: shapes that do not
            match, or non-finite values.
    """
    _check_encoding(size, flow_scale, strain_scale, encoding)
    flow, strain = np.asarray(flow, np.float32), np.asarray(strain, np.float32)
    if flow.ndim != 3 or flow.shape[2] != 2 or 0 in flow.shape or strain.shape != flow.shape[:2]:
        raise DataError(f"expected an (H, W, 2) flow field and its (H, W) strain, got {flow.shape} and {strain.shape}")
    if not (np.isfinite(flow).all() and np.isfinite(strain).all()):
        raise DataError("the flow field or its strain holds NaN or infinite values")
    h, w = flow.shape[:2]
    small = cv2.resize(flow, (size, size), interpolation=cv2.INTER_AREA) * np.array([size / w, size / h], np.float32)
    strain_small = cv2.resize(strain, (size, size), interpolation=cv2.INTER_AREA)
    out = np.empty((size, size, 3), np.float32)
    if encoding == "minmax":
        return minmax_channels(np.dstack([small, strain_small]))
    out[..., :2] = 127.5 + 127.5 * np.clip(small / flow_scale, -1.0, 1.0)
    out[..., 2] = 255.0 * np.clip(strain_small / strain_scale, 0.0, 1.0)
    return out


def _check_encoding(size: int, flow_scale: float, strain_scale: float, encoding: str = "fixed") -> None:
    """OptionError for an output size < 1, scales that are not positive, or an unknown encoding."""
    if encoding not in FLOW_ENCODINGS:
        raise OptionError(f"unknown flow encoding {encoding!r}; expected one of {FLOW_ENCODINGS}")
    if int(size) < 1:
        raise OptionError(f"the flow image size must be at least 1 pixel, got {size}")
    if not (flow_scale > 0 and strain_scale > 0):
        raise OptionError(f"flow_scale and strain_scale must be > 0, got {flow_scale} and {strain_scale}")
