"""From :class:`~mer_keras.data.records.Sample` records to network inputs.

Representations (``RepresentationConfig.representation``):

* ``dynamic_image``: approximate rank pooling of the aligned onset..offset frames (Bilen et al.,
  CVPR 2016), min-max scaled to [0, 255]; (size, size, 3), size 112 for LEARNet.
* ``apex``: the aligned apex frame alone (the control that shows the signal is in the motion).
* ``flow``: onset -> apex optical flow u, v and optical strain (STSTNet-style), size 28 by default;
  with ``regions="htnet"`` the flow of four facial regions (eyes, mouth corners) tiled 2 x 2.
* ``sequence``: ``frames`` aligned frames sampled evenly from onset to offset (T, size, size, 3).

Every frame of a clip is aligned with the similarity transform of its onset frame
(:func:`mer_keras.preprocess.face.align_clip`). Results are cached per clip, one ``.npy`` each in
``<cache>/clips/<representation>-<hash of the parameters>/``, written atomically: re-running with
the same parameters does no work, other parameters make a new folder, a killed run resumes.
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
from mer_keras.preprocess.face import FaceNotFoundError, align_clip, alignment_matrix, get_landmarker
from mer_keras.preprocess.flow import FLOW_METHODS, flow_representation
from mer_keras.registry import REPRESENTATIONS

PIPELINE_VERSION = 1

#: Fields added after version 1; left out of the cache key while at their default so that caches
#: built before they existed stay valid.
_NEW_FIELD_DEFAULTS = {"frames": 8, "channels": 3, "regions": None}

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
    """

    representation: str = "dynamic_image"
    size: int = 112
    crop: int = 128
    flow_method: str = "tvl1"
    frames: int = 8
    channels: int = 3
    regions: str | None = None

    def __post_init__(self) -> None:
        if self.representation not in REPRESENTATIONS:
            raise ValueError(f"unknown representation {self.representation!r}; expected one of {REPRESENTATIONS}")
        if self.flow_method not in FLOW_METHODS:
            raise ValueError(f"unknown flow method {self.flow_method!r}; expected one of {FLOW_METHODS}")
        if self.frames < 2:
            raise ValueError(f"a sequence needs at least 2 frames, got frames={self.frames}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {self.channels}")
        if self.channels == 1 and self.representation not in ("apex", "sequence"):
            raise ValueError(f"grayscale input exists for apex and sequence, not {self.representation}")
        if self.regions not in REGION_LAYOUTS:
            raise ValueError(f"unknown region layout {self.regions!r}; expected one of {REGION_LAYOUTS}")
        if self.regions and self.representation != "flow":
            raise ValueError(f"regions apply to the flow representation, not {self.representation}")
        if self.regions and self.size % 2:
            raise ValueError(f"a 2 x 2 region layout needs an even size, got {self.size}")

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
    return (image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]


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
        ``cfg.input_shape`` float32 in [0, 255].
    Raises:
        FaceNotFoundError: no face on the onset frame.
    """
    if cfg.representation == "sequence":
        picked = [frames[i] for i in sequence_indices(onset, offset, cfg.frames)]
        aligned = align_clip(picked, size=cfg.crop, clip_id=clip_id)
        resized = np.stack([cv2.resize(f, (cfg.size, cfg.size), interpolation=cv2.INTER_AREA) for f in aligned])
        return _channels(resized, cfg.channels)
    if cfg.representation == "dynamic_image":
        aligned = align_clip(frames[onset:offset + 1], size=cfg.crop, clip_id=clip_id)
        di = dynamic_image(aligned)
        di = cv2.resize(di, (cfg.size, cfg.size), interpolation=cv2.INTER_AREA)
        return scale_to_uint8_range(di)
    if cfg.regions:
        landmarks = get_landmarker()(np.asarray(frames[onset]))
        if landmarks is None:
            raise FaceNotFoundError(f"no face found in the onset frame of clip {clip_id}")
        aligned = align_clip([frames[onset], frames[apex]], landmarks=landmarks, size=cfg.crop, clip_id=clip_id)
        m = alignment_matrix(landmarks, cfg.crop)
        aligned_landmarks = landmarks @ m[:, :2].T + m[:, 2]
        return region_flow_representation(aligned[0], aligned[1], aligned_landmarks, size=cfg.size,
                                          method=cfg.flow_method)
    aligned = align_clip([frames[onset], frames[apex]], size=cfg.crop, clip_id=clip_id)
    if cfg.representation == "apex":
        apex_img = cv2.resize(aligned[1], (cfg.size, cfg.size), interpolation=cv2.INTER_AREA)
        return _channels(apex_img, cfg.channels)
    return flow_representation(aligned[0], aligned[1], size=cfg.size, method=cfg.flow_method)


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


def sample_representation(sample: Sample, cfg: RepresentationConfig) -> np.ndarray:
    """:func:`representation_from_frames` for a :class:`Sample`, reading only the frames needed."""
    if cfg.representation == "dynamic_image":
        wanted = range(sample.onset, sample.offset + 1)
    elif cfg.representation == "sequence":
        wanted = sequence_indices(sample.onset, sample.offset, cfg.frames)
        frames = {i: read_frame(sample.frame_paths[i]) for i in sorted(set(wanted))}
        # the T frames already picked: sampling them again over 0..T-1 keeps them all, in order
        return representation_from_frames([frames[i] for i in wanted], 0, 0, len(wanted) - 1, cfg, sample.key)
    else:
        wanted = (sample.onset, sample.apex)
    frames = {i: read_frame(sample.frame_paths[i]) for i in wanted}
    if cfg.representation == "dynamic_image":
        clip = [frames[i] for i in wanted]
        return representation_from_frames(clip, 0, sample.apex - sample.onset, len(clip) - 1, cfg, sample.key)
    return representation_from_frames([frames[sample.onset], frames[sample.apex]], 0, 1, 1, cfg, sample.key)


def image_inputs(paths: Sequence[str], size: int, channels: int = 3) -> np.ndarray:
    """Precomputed input images (manifest ``path`` rows), resized to ``size``.

    Returns:
        (N, size, size, channels) float32 in [0, 255]: the image as stored, no alignment
        (channels 1: BT.601 luma).
    Raises:
        ValueError: an unreadable image (named).
    """
    out = np.empty((len(paths), size, size, channels), np.float32)
    for i, p in enumerate(paths):
        out[i] = _channels(cv2.resize(read_frame(p), (size, size), interpolation=cv2.INTER_AREA), channels)
    return out


def config_key(cfg: RepresentationConfig) -> str:
    """Folder name of a representation config in the cache: representation and a hash of every parameter."""
    fields = {k: v for k, v in asdict(cfg).items() if not (k in _NEW_FIELD_DEFAULTS and v == _NEW_FIELD_DEFAULTS[k])}
    h = hashlib.sha256(json.dumps({"v": PIPELINE_VERSION, **fields}, sort_keys=True).encode())
    return f"{cfg.representation}-{h.hexdigest()[:12]}"


def clip_key(sample: Sample) -> str:
    """Cache file stem of a clip: a hash of its identity, window and the onset/apex/offset files' stats."""
    h = hashlib.sha256(f"{sample.key}|{sample.onset}|{sample.apex}|{sample.offset}|{len(sample.frame_paths)}".encode())
    for p in (sample.frame_paths[sample.onset], sample.frame_paths[sample.apex], sample.frame_paths[sample.offset]):
        try:
            st = os.stat(p)
            h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}".encode())
        except OSError:
            h.update(f"{p}|missing".encode())
    return h.hexdigest()[:20]


def cache_path(cache_dir: Path, sample: Sample, cfg: RepresentationConfig) -> Path:
    """``<cache_dir>/clips/<config key>/<clip key>.npy``."""
    return Path(cache_dir) / "clips" / config_key(cfg) / f"{clip_key(sample)}.npy"


def _prepare_one(job) -> tuple[int, str | None]:
    """Worker: build one clip's representation and store it atomically; (index, error or None)."""
    index, sample, cfg, path = job
    try:
        x = sample_representation(sample, cfg)
    except (ValueError, FileNotFoundError) as exc:  # FaceNotFoundError is a ValueError
        return index, str(exc)
    with atomic_path(path) as tmp:
        np.save(tmp, x.astype(np.float32), allow_pickle=False)
    return index, None


def _single_threaded_worker() -> None:
    """Worker start-up: one OpenCV thread per process, so N workers do not oversubscribe N cores."""
    cv2.setNumThreads(1)


def prepare(samples: Sequence[Sample], cfg: RepresentationConfig | Sequence[RepresentationConfig], cache_dir: Path,
            workers: int = 1, progress: Callable[[int, int], None] | None = None) -> dict[int, str]:
    """Fill the per-clip cache for ``samples`` in one or several representations.

    Clips already cached are not recomputed. Each clip is written as soon as it is done
    (atomically), so a killed run resumes where it stopped. ``workers > 1`` runs the clips in that
    many processes (spawned once for all representations; one OpenCV thread each).

    Args:
        cfg: one representation config or several.
        progress: optional callable(done, total) over all (clip, representation) pairs.
    Returns:
        {sample index: reason} for every clip that failed in any representation.
    """
    cfgs = [cfg] if isinstance(cfg, RepresentationConfig) else list(cfg)
    jobs, total = [], len(samples) * len(cfgs)
    for c in cfgs:
        for i, s in enumerate(samples):
            path = cache_path(cache_dir, s, c)
            if not path.exists():
                jobs.append((i, s, c, path))
    done, errors = total - len(jobs), {}
    if progress:
        progress(done, total)
    parallel = workers > 1 and len(jobs) >= 2
    if parallel:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_single_threaded_worker)
        results = pool.map(_prepare_one, jobs, chunksize=4)
    else:
        results = map(_prepare_one, jobs)
    try:
        for i, err in results:
            if err is not None:
                errors.setdefault(i, err)
            done += 1
            if progress:
                progress(done, total)
    finally:
        if parallel:
            pool.shutdown(cancel_futures=True)
    return errors


def build_inputs(samples: Sequence[Sample], cfg: RepresentationConfig, cache_dir: Path | None = None,
                 progress: Callable[[int, int], None] | None = None, workers: int = 1) -> np.ndarray:
    """Representations of all samples, through the per-clip cache when ``cache_dir`` is given.

    Args:
        samples: N records. cfg: representation config. cache_dir: cache root (``None``: no cache).
        progress: optional callable(done, total). workers: processes for clips not yet cached.
    Returns:
        (N, *cfg.input_shape) float32 array in [0, 255].
    Raises:
        ValueError, FileNotFoundError: a clip cannot be built (the first failure, naming the clip).
    """
    if cache_dir is None:
        out = np.empty((len(samples), *cfg.input_shape), np.float32)
        for i, s in enumerate(samples):
            out[i] = sample_representation(s, cfg)
            if progress:
                progress(i + 1, len(samples))
        return out
    errors = prepare(samples, cfg, Path(cache_dir), workers=workers, progress=progress)
    if errors:
        i = min(errors)
        raise ValueError(f"{samples[i].source or samples[i].key}: {errors[i]}"
                         + (f" (and {len(errors) - 1} more bad clips)" if len(errors) > 1 else ""))
    out = np.empty((len(samples), *cfg.input_shape), np.float32)
    for i, s in enumerate(samples):
        out[i] = np.load(cache_path(Path(cache_dir), s, cfg), allow_pickle=False)
    return out
