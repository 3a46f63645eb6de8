"""How one clip becomes one network input: the representations, without TensorFlow.

This module is the single definition of every input representation; the training pipeline
(:mod:`mer_keras.data.pipeline`, with its per-clip cache) and the ``edge/`` runner (on devices
without TensorFlow) both call :func:`representation_from_frames`, so a deployed model sees exactly
what it was trained on. Imports numpy, OpenCV and mediapipe only.

Representations (``RepresentationConfig.representation``):

* ``dynamic_image``: approximate rank pooling of the aligned onset..offset frames (Bilen et al.,
  CVPR 2016), min-max scaled to [0, 255]; (size, size, 3), size 112 for LEARNet.
* ``apex``: the aligned apex frame alone (the control that shows the signal is in the motion).
* ``flow``: onset -> apex optical flow u, v and optical strain (STSTNet-style), size 28 by default;
  with ``regions="htnet"`` the flow of four facial regions (eyes, mouth corners) tiled 2 x 2.
* ``sequence``: ``frames`` aligned frames sampled evenly from onset to offset (T, size, size, 3).

Every frame of a clip is aligned with the similarity transform of its onset frame
(:func:`mer_keras.preprocess.face.align_clip`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import cv2
import numpy as np

from mer_keras.errors import DataError, OptionError
from mer_keras.names import REPRESENTATIONS  # noqa: F401  (re-exported)
from mer_keras.preprocess import portable

#: Representations a model can consume.
from mer_keras.preprocess.dynamic_image import WEIGHTINGS as DI_WEIGHTINGS
from mer_keras.preprocess.dynamic_image import dynamic_image, scale_to_uint8_range
from mer_keras.preprocess.face import FaceNotFoundError, align_clip, alignment_matrix, get_landmarker
from mer_keras.preprocess.flow import (
    FLOW_ENCODINGS,
    FLOW_METHODS,
    MIN_FLOW_SIDE,
    flow_representation,
)

#: Region layouts of the ``flow`` representation (see :func:`region_flow_representation`).
REGION_LAYOUTS = (None, "htnet")


@dataclass(frozen=True)
class RepresentationConfig:
    """How a clip becomes one network input.

    Attributes:
        representation: one of ``dynamic_image``, ``apex``, ``flow``, ``sequence``.
        size: side of the output image (of each frame for ``sequence``) in pixels.
        crop: side of the aligned face crop in pixels (alignment resolution), default 128.
        flow_method: ``tvl1`` | ``farneback`` | ``dis`` (flow representation only).
        frames: T, frames of a ``sequence`` (onset and offset included), >= 2.
        channels: 3 (RGB) or 1 (grayscale, BT.601 luma) for ``apex`` and ``sequence``.
        regions: ``None`` (whole face) or ``"htnet"`` for ``flow`` (see
            :func:`region_flow_representation`).
        flow_encoding: ``fixed`` (one scale for all clips, the default) or ``minmax`` (each channel of
            each image stretched to 0..255, as the published composite flow images are); see
            :func:`mer_keras.preprocess.flow.encode_flow`.
        dynamic_image: rank-pooling weighting of the ``dynamic_image`` representation: ``bilen``
            (Bilen et al. 2016, the default) or ``authors`` (LEARNet's released code); see
            :func:`mer_keras.preprocess.dynamic_image.rank_pooling_coefficients`.
    """

    representation: str = "dynamic_image"
    size: int = 112
    crop: int = 128
    flow_method: str = "tvl1"
    frames: int = 8
    channels: int = 3
    regions: str | None = None
    flow_encoding: str = "fixed"
    dynamic_image: str = "bilen"

    def __post_init__(self) -> None:
        for name in ("size", "crop", "frames", "channels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise OptionError(f"{name} must be a whole number, got {value!r}")
        if self.size < 1 or self.crop < 1:
            raise OptionError(f"size and crop must be at least 1 pixel, got size={self.size}, crop={self.crop}")
        if self.representation == "flow" and self.crop < MIN_FLOW_SIDE:
            raise OptionError(f"the flow representation needs a crop of at least {MIN_FLOW_SIDE} pixels, "
                              f"got {self.crop}")
        if self.representation not in REPRESENTATIONS:
            raise OptionError(f"unknown representation {self.representation!r}; expected one of {REPRESENTATIONS}")
        if self.flow_method not in FLOW_METHODS:
            raise OptionError(f"unknown flow method {self.flow_method!r}; expected one of {FLOW_METHODS}")
        if self.frames < 2:
            raise OptionError(f"a sequence needs at least 2 frames, got frames={self.frames}")
        if self.channels not in (1, 3):
            raise OptionError(f"channels must be 1 (grayscale) or 3 (RGB), got {self.channels}")
        if self.channels == 1 and self.representation not in ("apex", "sequence"):
            raise OptionError(f"grayscale input exists for apex and sequence, not {self.representation}")
        if self.regions not in REGION_LAYOUTS:
            raise OptionError(f"unknown region layout {self.regions!r}; expected one of {REGION_LAYOUTS}")
        if self.regions and self.representation != "flow":
            raise OptionError(f"regions apply to the flow representation, not {self.representation}")
        if self.flow_encoding not in FLOW_ENCODINGS:
            raise OptionError(f"unknown flow encoding {self.flow_encoding!r}; expected one of {FLOW_ENCODINGS}")
        if self.flow_encoding != "fixed" and self.representation != "flow":
            raise OptionError(f"a flow encoding applies to the flow representation, not {self.representation}")
        if self.dynamic_image not in DI_WEIGHTINGS:
            raise OptionError(f"unknown dynamic-image weighting {self.dynamic_image!r}; expected one of "
                              f"{DI_WEIGHTINGS}")
        if self.dynamic_image != "bilen" and self.representation != "dynamic_image":
            raise OptionError(f"a dynamic-image weighting applies to the dynamic_image representation, not "
                              f"{self.representation}")
        if self.regions and self.size % 2:
            raise OptionError(f"a 2 x 2 region layout needs an even size, got {self.size}")

    @classmethod
    def from_dict(cls, recorded: dict) -> RepresentationConfig:
        """The config recorded in a run's ``metadata.json`` (``preprocessing``) or ``config.json``.

        Keys that are not fields are ignored; fields added after a run was made take their
        defaults, which is what that run used.

        Raises:
            KeyError: representation, size, crop or flow_method missing. OptionError: a bad value.
        """
        for key in ("representation", "size", "crop", "flow_method"):
            recorded[key]  # noqa: B018  (present since the first version: required)

        def whole(name, value):
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise OptionError(f"{name} must be a whole number, got {value!r}") from None
            if not number.is_integer():  # NaN, infinities and fractions: not a pixel count
                raise OptionError(f"{name} must be a whole number, got {value!r}")
            return int(number)

        numeric = ("size", "crop", "frames", "channels")
        return cls(**{f.name: whole(f.name, recorded[f.name]) if f.name in numeric else recorded[f.name]
                      for f in fields(cls) if f.name in recorded})

    @property
    def input_shape(self) -> tuple[int, ...]:
        """(size, size, channels), or (frames, size, size, channels) for ``sequence``."""
        image = (self.size, self.size, self.channels)
        return (self.frames, *image) if self.representation == "sequence" else image


def sequence_indices(onset: int, offset: int, frames: int) -> list[int]:
    """``frames`` indices spread evenly over onset..offset (both included), rounded to the nearest.

    A clip shorter than ``frames`` repeats frames (nearest-neighbour temporal resampling).
    """
    return [int(round(v)) for v in np.linspace(onset, offset, frames)]


def _channels(image: np.ndarray, channels: int) -> np.ndarray:
    """(..., H, W, 3) uint8 RGB -> float32 with ``channels`` channels (1: BT.601 luma)."""
    if channels == 3:
        return image.astype(np.float32)
    rgb = image.astype(np.float32)  # element-wise, not a BLAS product: the same bits on every CPU
    luma = np.float32(0.299) * rgb[..., 0] + np.float32(0.587) * rgb[..., 1] + np.float32(0.114) * rgb[..., 2]
    return luma[..., None]


def representation_from_frames(frames: np.ndarray, onset: int, apex: int, offset: int,
                               cfg: RepresentationConfig, clip_id: str = "clip",
                               landmarks: np.ndarray | None = None) -> np.ndarray:
    """Build one input from the raw frames of a clip.

    Args:
        frames: (T, H, W, 3) uint8 RGB raw frames (or a list of them); indices are into it.
        onset, apex, offset: 0-based frame indices, onset <= apex <= offset < T.
        landmarks: (468, 2) face-mesh landmarks of the onset frame when already known (the edge
            runner detects them once per window); ``None`` detects them here.
    Returns:
        ``cfg.input_shape`` float32 in [0, 255].
    Raises:
        FaceNotFoundError: no face on the onset frame.
        DataError: indices out of order or outside the clip, frames that are not uint8 RGB or
            grayscale images, or frames too small for the representation (each names ``clip_id``).
    """
    if not 0 <= onset <= apex <= offset < len(frames):
        raise DataError(f"clip {clip_id}: onset {onset}, apex {apex}, offset {offset} are not in order within "
                        f"its {len(frames)} frame(s)")
    if cfg.representation == "sequence":
        picked = [frames[i] for i in sequence_indices(onset, offset, cfg.frames)]
        aligned = align_clip(picked, landmarks=landmarks, size=cfg.crop, clip_id=clip_id)
        resized = np.stack([cv2.resize(f, (cfg.size, cfg.size), interpolation=cv2.INTER_AREA) for f in aligned])
        return _channels(resized, cfg.channels)
    if cfg.representation == "dynamic_image":
        aligned = align_clip(frames[onset:offset + 1], landmarks=landmarks, size=cfg.crop, clip_id=clip_id)
        di = dynamic_image(aligned, cfg.dynamic_image)
        di = cv2.resize(di, (cfg.size, cfg.size), interpolation=cv2.INTER_AREA)
        return scale_to_uint8_range(di)
    if cfg.regions:
        if landmarks is None:
            landmarks = get_landmarker()(np.asarray(frames[onset]))
        if landmarks is None:
            raise FaceNotFoundError(f"no face found in the onset frame of clip {clip_id}")
        aligned = align_clip([frames[onset], frames[apex]], landmarks=landmarks, size=cfg.crop, clip_id=clip_id)
        m = alignment_matrix(landmarks, cfg.crop)
        aligned_landmarks = portable.matmul(landmarks, m[:, :2].T) + m[:, 2]
        if cfg.flow_encoding == "minmax":  # as the published images: the whole face encoded, then the regions cut
            whole = flow_representation(aligned[0], aligned[1], size=cfg.size, method=cfg.flow_method,
                                        encoding="minmax")
            scale = cfg.size / aligned[0].shape[1]
            return fixed_region_tiles(whole, [(x * scale, y * scale) for x, y in region_centres(aligned_landmarks)])
        return region_flow_representation(aligned[0], aligned[1], aligned_landmarks, size=cfg.size,
                                          method=cfg.flow_method)
    aligned = align_clip([frames[onset], frames[apex]], landmarks=landmarks, size=cfg.crop, clip_id=clip_id)
    if cfg.representation == "apex":
        apex_img = cv2.resize(aligned[1], (cfg.size, cfg.size), interpolation=cv2.INTER_AREA)
        return _channels(apex_img, cfg.channels)
    return flow_representation(aligned[0], aligned[1], size=cfg.size, method=cfg.flow_method,
                               encoding=cfg.flow_encoding)


#: mediapipe face-mesh indices of the mouth corners (image left, image right).
MOUTH_CORNERS = (61, 291)


def region_centres(landmarks: np.ndarray) -> np.ndarray:
    """Centres of the four HTNet regions from (468, 2) face-mesh landmarks, in the same pixels.

    Returns:
        (4, 2) float32 (x, y): image-left eye, image-right eye, image-left and image-right mouth
        corner. Eye centres are the means of the eye contours (:func:`eye_centres`).
    """
    from mer_keras.preprocess.face import eye_centres

    left_eye, right_eye = sorted(eye_centres(landmarks), key=lambda p: p[0])
    corners = sorted((landmarks[MOUTH_CORNERS[0]], landmarks[MOUTH_CORNERS[1]]), key=lambda p: p[0])
    return np.array([left_eye, right_eye, corners[0], corners[1]], np.float32)


#: HTNet region centres (x, y) on a 28 x 28 whole-face flow image when no landmarks are at hand:
#: the official code's own fallback MTCNN points (used when MTCNN finds no face on the apex frame),
#: clamped to 7..21 as it clamps them: left eye, right eye, left and right mouth corner (its nose
#: point is unused). Ready flow images (e.g. the published composite) carry no apex frame to
#: detect landmarks on, so these fixed centres stand in for per-clip ones.
FIXED_REGION_CENTRES_28 = ((9, 11), (21, 10), (10, 21), (20, 21))


def fixed_region_tiles(image: np.ndarray, centres=None) -> np.ndarray:
    """HTNet's four-region input cut from a whole-face flow image.

    The four squares of side H / 2 around ``centres`` (default :data:`FIXED_REGION_CENTRES_28`
    scaled to the image's side; shifted to stay inside it) are tiled [[left eye, right eye],
    [left mouth corner, right mouth corner]], the layout of :func:`region_flow_representation`.
    Rows are indexed with y (the official code indexes rows with x, transposing its crops; this
    crops as intended). With the min-max encoding the regions are cut from the encoded whole face,
    as from the published images, so training on those and deployment on video see alike inputs.

    Args:
        image: (H, H, C) whole-face flow image, H even (28 for the published composite).
        centres: four (x, y) centres in the image's pixels (left eye, right eye, left and right
            mouth corner), or None for the fixed ones.
    Returns:
        (H, H, C) array of the image's dtype: the tiled regions.
    Raises:
        ValueError: a non-square image or an odd side.
    """
    h, w = image.shape[:2]
    if h != w or h % 2:
        raise ValueError(f"fixed HTNet regions need a square image of even side; got {h} x {w}")
    side, scale = h // 2, h / 28.0
    if centres is None:
        centres = [(cx * scale, cy * scale) for cx, cy in FIXED_REGION_CENTRES_28]
    tiles = []
    for cx, cy in centres:
        x0 = int(np.clip(round(cx - side / 2), 0, w - side))
        y0 = int(np.clip(round(cy - side / 2), 0, h - side))
        tiles.append(image[y0:y0 + side, x0:x0 + side])
    return np.concatenate([np.concatenate(tiles[:2], axis=1), np.concatenate(tiles[2:], axis=1)], axis=0)


def region_flow_representation(onset: np.ndarray, apex: np.ndarray, landmarks: np.ndarray, size: int = 28,
                               method: str = "tvl1") -> np.ndarray:
    """HTNet's input: the onset -> apex flow of four facial regions, tiled 2 x 2.

    Wang et al., "HTNet for micro-expression recognition", Neurocomputing 2024 (official code):
    four 14 x 14 crops of the 28 x 28 flow image around the eyes and the mouth corners. Here the
    flow and strain are computed on the aligned crop (W x W), cut into squares of side W / 2 centred
    on :func:`region_centres` (shifted to stay inside the image), each encoded at ``size / 2`` like
    :func:`~mer_keras.preprocess.flow.encode_flow` (so magnitudes match the whole-face image), and
    tiled [[left eye, right eye], [left mouth corner, right mouth corner]]. The official code
    indexes rows with x, which transposes its crops; this crops as intended.

    Args:
        onset, apex: (W, W, 3) uint8 aligned frames. landmarks: (468, 2) float32 landmarks of the
        aligned onset frame, pixels. size: side of the output, even.
    Returns:
        (size, size, 3) float32 in [0, 255] (u, v, strain).
    """
    from mer_keras.preprocess.flow import encode_flow, optical_flow, optical_strain

    flow = optical_flow(onset, apex, method)
    strain = optical_strain(flow)
    w = flow.shape[1]
    side, half = w // 2, size // 2
    tiles = []
    for cx, cy in region_centres(landmarks):
        x0 = int(np.clip(round(cx - side / 2), 0, w - side))
        y0 = int(np.clip(round(cy - side / 2), 0, flow.shape[0] - side))
        tiles.append(encode_flow(flow[y0:y0 + side, x0:x0 + side], strain[y0:y0 + side, x0:x0 + side], half))
    return np.concatenate([np.concatenate(tiles[:2], axis=1), np.concatenate(tiles[2:], axis=1)], axis=0)
