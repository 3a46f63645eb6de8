"""Choosing frames within a clip: apex spotting for clips whose coders gave no apex."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from mer_keras.errors import DataError, OptionError
from mer_keras.preprocess.images import read_image


def spot_apex_frames(frames: Sequence[np.ndarray], size: int = 64) -> int:
    """Index of the frame with the largest motion against the first (onset) frame.

    Method: each frame is converted to grayscale and area-resized to ``size`` x ``size``; DIS
    optical flow (Kroeger et al., ECCV 2016; OpenCV ultrafast preset) from the onset frame to it;
    the motion magnitude is the mean flow length over the image. Returns the argmax over frames
    1..T-1 (0 for a clip of one frame).

    Args:
        frames: T >= 1 (H, W) uint8 grayscale or (H, W, 3) uint8 RGB frames, onset first.
        size: side of the motion grid, at least :data:`~mer_keras.preprocess.flow.MIN_FLOW_SIDE`.
    Returns:
        int index into ``frames``.
    Raises:
        DataError: no frame, a frame of another dtype or layout. OptionError: ``size`` too small.
    """
    from mer_keras.preprocess.flow import MIN_FLOW_SIDE

    def small(frame):
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or not (frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 3)) \
                or 0 in frame.shape:
            raise DataError(f"apex spotting needs (H, W) or (H, W, 3) uint8 frames, got {frame.shape} {frame.dtype}")
        if frame.ndim == 3:
            frame = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        return cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)

    if len(frames) == 0:
        raise DataError("apex spotting needs at least one frame, got none")
    if size < MIN_FLOW_SIDE:
        raise OptionError(f"apex spotting grid of {size} pixels; at least {MIN_FLOW_SIDE} are needed")
    if len(frames) < 2:
        small(frames[0])
        return 0
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
    onset = small(frames[0])
    magnitude = [0.0]
    for frame in frames[1:]:
        flow = dis.calc(onset, small(frame), None)
        magnitude.append(float(np.hypot(flow[..., 0], flow[..., 1]).mean()))
    return int(np.argmax(magnitude))


def spot_apex(paths: Sequence[str], size: int = 64) -> int:
    """:func:`spot_apex_frames` on frame files (read in grayscale).

    Head motion counts too: on unaligned frames a head movement can win.

    Args:
        paths: frame files from onset to offset, in order.
    Returns:
        int index into ``paths``.
    Raises:
        DataError: an unreadable or truncated frame (named).
    """
    frames = []
    for p in paths[:1] if len(paths) < 2 else paths:
        img = read_image(p, grayscale=True)
        frames.append(cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA))  # small as read: long clips
    return spot_apex_frames(frames, size)
