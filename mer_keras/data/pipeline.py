"""From :class:`~mer_keras.data.records.Sample` records to network inputs.

Representations (``RepresentationConfig.representation``):

* ``dynamic_image``: approximate rank pooling of the aligned onset..offset frames (Bilen et al.,
  CVPR 2016), min-max scaled to [0, 255]; (size, size, 3), size 112 for LEARNet.
* ``apex``: the aligned apex frame alone (the control that shows the signal is in the motion).
* ``flow``: onset -> apex optical flow u, v and optical strain (STSTNet-style), size 28 by default.

Every frame of a clip is aligned with the similarity transform of its onset frame
(:func:`mer_keras.preprocess.face.align_clip`). Results are cached per dataset and config in one
``.npz`` written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from mer_keras.atomic import atomic_path
from mer_keras.data.records import Sample
from mer_keras.preprocess.dynamic_image import dynamic_image, scale_to_uint8_range
from mer_keras.preprocess.face import align_clip, get_landmarker
from mer_keras.preprocess.flow import FLOW_METHODS, flow_representation
from mer_keras.registry import REPRESENTATIONS

PIPELINE_VERSION = 1


@dataclass(frozen=True)
class RepresentationConfig:
    """How a clip becomes one network input.

    Attributes:
        representation: one of ``dynamic_image``, ``apex``, ``flow``.
        size: side of the output image in pixels.
        crop: side of the aligned face crop in pixels (alignment resolution), default 128.
        flow_method: ``tvl1`` | ``farneback`` | ``dis`` (flow representation only).
    """

    representation: str = "dynamic_image"
    size: int = 112
    crop: int = 128
    flow_method: str = "tvl1"

    def __post_init__(self) -> None:
        if self.representation not in REPRESENTATIONS:
            raise ValueError(f"unknown representation {self.representation!r}; expected one of {REPRESENTATIONS}")
        if self.flow_method not in FLOW_METHODS:
            raise ValueError(f"unknown flow method {self.flow_method!r}; expected one of {FLOW_METHODS}")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.size, self.size, 3)


def read_frame(path: str) -> np.ndarray:
    """Read one frame as (H, W, 3) uint8 RGB (grayscale files are expanded).

    Raises:
        ValueError: the file is missing or not a readable image (the message names it).
    """
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"cannot read frame {path} (missing, truncated or not an image)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def representation_from_frames(frames: np.ndarray, onset: int, apex: int, offset: int,
                               cfg: RepresentationConfig, clip_id: str = "clip") -> np.ndarray:
    """Build one input from the raw frames of a clip.

    Args:
        frames: (T, H, W, 3) uint8 RGB raw frames (or a list of them); indices are into it.
        onset, apex, offset: 0-based frame indices, onset <= apex <= offset < T.
    Returns:
        (size, size, 3) float32 in [0, 255].
    Raises:
        FaceNotFoundError: no face on the onset frame.
    """
    if cfg.representation == "dynamic_image":
        aligned = align_clip(frames[onset:offset + 1], size=cfg.crop, clip_id=clip_id)
        di = dynamic_image(aligned)
        di = cv2.resize(di, (cfg.size, cfg.size), interpolation=cv2.INTER_AREA)
        return scale_to_uint8_range(di)
    aligned = align_clip([frames[onset], frames[apex]], size=cfg.crop, clip_id=clip_id)
    if cfg.representation == "apex":
        return cv2.resize(aligned[1], (cfg.size, cfg.size), interpolation=cv2.INTER_AREA).astype(np.float32)
    return flow_representation(aligned[0], aligned[1], size=cfg.size, method=cfg.flow_method)


def sample_representation(sample: Sample, cfg: RepresentationConfig) -> np.ndarray:
    """:func:`representation_from_frames` for a :class:`Sample`, reading only the frames needed."""
    if cfg.representation == "dynamic_image":
        wanted = range(sample.onset, sample.offset + 1)
    else:
        wanted = (sample.onset, sample.apex)
    frames = {i: read_frame(sample.frame_paths[i]) for i in wanted}
    if cfg.representation == "dynamic_image":
        clip = [frames[i] for i in wanted]
        return representation_from_frames(clip, 0, sample.apex - sample.onset, len(clip) - 1, cfg, sample.key)
    return representation_from_frames([frames[sample.onset], frames[sample.apex]], 0, 1, 1, cfg, sample.key)


def image_inputs(paths: Sequence[str], size: int) -> np.ndarray:
    """Precomputed input images (manifest ``path`` rows), resized to ``size``.

    Returns:
        (N, size, size, 3) float32 in [0, 255]: the image as stored, no alignment.
    Raises:
        ValueError: an unreadable image (named).
    """
    out = np.empty((len(paths), size, size, 3), np.float32)
    for i, p in enumerate(paths):
        out[i] = cv2.resize(read_frame(p), (size, size), interpolation=cv2.INTER_AREA)
    return out


def _fingerprint(samples: Sequence[Sample], cfg: RepresentationConfig) -> str:
    h = hashlib.sha256(json.dumps({"v": PIPELINE_VERSION, **asdict(cfg)}, sort_keys=True).encode())
    for s in samples:
        h.update(f"{s.key}|{s.onset}|{s.apex}|{s.offset}|{len(s.frame_paths)}".encode())
        for p in (s.frame_paths[s.onset], s.frame_paths[s.apex], s.frame_paths[s.offset]):
            st = os.stat(p)
            h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def build_inputs(samples: Sequence[Sample], cfg: RepresentationConfig, cache_dir: Path | None = None,
                 progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Representations of all samples, cached.

    Args:
        samples: N records.
        cfg: representation config.
        cache_dir: folder for the ``.npz`` cache (``None``: no cache).
        progress: optional callable(done, total).
    Returns:
        (N, size, size, 3) float32 array in [0, 255].
    """
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / "representations" / f"{cfg.representation}-{_fingerprint(samples, cfg)}.npz"
        if path.exists():
            with np.load(path) as z:
                return z["x"]
    get_landmarker()  # load the face mesh once, before the loop
    out = np.empty((len(samples), *cfg.input_shape), np.float32)
    for i, s in enumerate(samples):
        out[i] = sample_representation(s, cfg)
        if progress:
            progress(i + 1, len(samples))
    if path is not None:
        with atomic_path(path) as tmp:
            np.savez(tmp, x=out)
    return out
