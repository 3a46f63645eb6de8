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


def read_image(path: str | os.PathLike, grayscale: bool = False) -> np.ndarray:
    """Decode one image file (OpenCV, BGR channel order as ``cv2.imread`` gives it).

    Args:
        path: image file (any format OpenCV reads: JPEG, PNG, BMP, TIFF, ...).
        grayscale: decode as (H, W) uint8 instead of (H, W, 3) uint8 BGR.
    Returns:
        (H, W, 3) uint8 BGR, or (H, W) uint8 with ``grayscale``.
    Raises:
        DataError: the file is missing, a folder, empty, not an image, or a truncated JPEG (the
            message names the file and starts with "cannot read frame").
    """
    if os.path.isdir(path):
        raise DataError(f"cannot read frame {path} (a folder, not an image file)")
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE if grayscale else cv2.IMREAD_COLOR)
    if img is None:
        raise DataError(f"cannot read frame {path} (missing, truncated or not an image)")
    with open(path, "rb") as fh:
        head = fh.read(2)
        if head == _JPEG_SOI and jpeg_is_truncated(head + fh.read()):
            raise DataError(f"cannot read frame {path} (truncated JPEG: no end-of-image marker after its last scan)")
    return img
