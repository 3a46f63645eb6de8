"""Choosing frames within a clip: apex spotting for clips whose coders gave no apex."""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np


def spot_apex(paths: Sequence[str], size: int = 64) -> int:
    """Index of the frame with the largest motion against the first (onset) frame.

    Method: each frame is read in grayscale and resized to ``size`` x ``size``; DIS optical flow
    (Kroeger et al., ECCV 2016; OpenCV ultrafast preset) from the onset frame to it; the motion
    magnitude is the mean flow length over the image. Returns the argmax over frames 1..T-1 (0 for
    a clip of one frame). Head motion counts too: on unaligned frames a head movement can win.

    Args:
        paths: frame files from onset to offset, in order.
    Returns:
        int index into ``paths``.
    Raises:
        ValueError: an unreadable frame (named).
    """
    def read(p):
        img = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise ValueError(f"cannot read frame {p} (missing, truncated or not an image)")
        return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)

    if len(paths) < 2:
        return 0
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
    onset = read(paths[0])
    magnitude = [0.0]
    for p in paths[1:]:
        flow = dis.calc(onset, read(p), None)
        magnitude.append(float(np.hypot(flow[..., 0], flow[..., 1]).mean()))
    return int(np.argmax(magnitude))
