"""Reading image files with OpenCV, refusing corrupt and truncated ones by name.

``cv2.imread`` returns ``None`` for a missing, empty or foreign file, but decodes a truncated
JPEG without complaint (libjpeg only warns "Premature end of JPEG file" and fills the missing
rows with grey). A frame cut short by a failed copy would then enter training silently. So a
JPEG is also checked for its end-of-image marker (FFD9) after its last start-of-scan marker
(FFDA): inside entropy-coded data a 0xFF byte is always followed by 0x00 or a restart marker, so
neither marker can appear by chance there, and an EXIF thumbnail's own markers come before the
main image's scan.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from mer_keras.errors import DataError

_JPEG_SOI, _JPEG_SOS, _JPEG_EOI = b"\xff\xd8", b"\xff\xda", b"\xff\xd9"


def jpeg_is_truncated(data: bytes) -> bool:
    """True for JPEG bytes whose last scan has no end-of-image marker after it.

    Args:
        data: the whole file. Bytes that are not a JPEG (no SOI marker) give False.
    """
    if not data.startswith(_JPEG_SOI):
        return False
    return data.rfind(_JPEG_EOI) < data.rfind(_JPEG_SOS)


#: Largest image read, in pixels (a micro-expression frame is at most a few megapixels; a
#: 40000 x 40000 PNG of 200 kB would need 4.8 GB decoded).
MAX_PIXELS = 100_000_000


#: Formats that can hold floating-point pixels (which OpenCV maps from 0..1 to 0..255).
_FLOAT_FORMATS = (".tif", ".tiff", ".exr", ".hdr", ".pfm")


def _check_header(path) -> bool:
    """Read the image's header (Pillow, nothing decoded): refuse one over :data:`MAX_PIXELS`.
    Returns whether its format can hold floating-point pixels (OpenCV would scale them by 255 silently)."""
    from PIL import Image, UnidentifiedImageError

    floating = os.path.splitext(str(path))[1].lower() in _FLOAT_FORMATS
    try:
        with Image.open(path) as im:
            width, height = im.width, im.height
    except Image.DecompressionBombError as exc:  # over twice Pillow's own limit: its message has the size
        raise DataError(f"cannot read frame {path} ({exc}); not a video frame or input image") from None
    except (UnidentifiedImageError, OSError, ValueError):
        return floating  # a format Pillow does not know, or a broken header: OpenCV decides
    if width * height > MAX_PIXELS:
        raise DataError(f"cannot read frame {path} ({width} x {height} px = {width * height / 1e6:.0f} megapixels, "
                        f"over the limit of {MAX_PIXELS / 1e6:.0f}): not a video frame or input image")
    return floating


def _check_float_pixels(path) -> None:
    """A floating-point image (a TIFF of float32) must hold finite values in [0, 1]: OpenCV maps
    [0, 1] to 0..255 and any NaN to 0 without a word."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None or not np.issubdtype(raw.dtype, np.floating):
        return
    if not np.isfinite(raw).all():
        raise DataError(f"cannot read frame {path} (a floating-point image with "
                        f"{int((~np.isfinite(raw)).sum())} NaN or infinite pixel value(s))")
    lo, hi = float(raw.min()), float(raw.max())
    if lo < -0.05 or hi > 1.05:  # a lossy float encoding (OpenCV's own TIFF writer) strays a little
        raise DataError(f"cannot read frame {path} (a floating-point image with values {lo:g}..{hi:g}; OpenCV reads "
                        "float images as 0..1: save it as 8-bit, or scale it to 0..1)")


def read_image(path: str | os.PathLike, grayscale: bool = False) -> np.ndarray:
    """Decode one image file (OpenCV, BGR channel order as ``cv2.imread`` gives it).

    Args:
        path: image file (any format OpenCV reads: JPEG, PNG, BMP, TIFF, ...).
        grayscale: decode as (H, W) uint8 instead of (H, W, 3) uint8 BGR.
    Returns:
        (H, W, 3) uint8 BGR, or (H, W) uint8 with ``grayscale``.
    Raises:
        DataError: the file is missing, a folder, empty, not an image, a truncated JPEG, larger
            than :data:`MAX_PIXELS`, or a floating-point image with NaN, infinite or out-of-0..1
            values (the message names the file and starts with "cannot read frame").
    """
    if os.path.isdir(path):
        raise DataError(f"cannot read frame {path} (a folder, not an image file)")
    floating = _check_header(path)
    try:
        img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE if grayscale else cv2.IMREAD_COLOR)
    except cv2.error as exc:  # e.g. a header larger than OpenCV's pixel limit that Pillow could not read
        raise DataError(f"cannot read frame {path} (OpenCV refused it: {str(exc).strip().splitlines()[-1]})") from None
    if floating:
        _check_float_pixels(path)
    if img is None:
        raise DataError(f"cannot read frame {path} (missing, truncated or not an image"
                        + (", or floating-point samples OpenCV cannot convert: save it as 8-bit)" if floating else ")"))
    with open(path, "rb") as fh:
        head = fh.read(2)
        if head == _JPEG_SOI and jpeg_is_truncated(head + fh.read()):
            raise DataError(f"cannot read frame {path} (truncated JPEG: no end-of-image marker after its last scan)")
    return img
