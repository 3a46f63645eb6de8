"""From :class:`~mer_keras.data.records.Sample` records to network inputs.

Representations (``RepresentationConfig.representation``):

* ``dynamic_image``: approximate rank pooling of the aligned onset..offset frames (Bilen et al.,
  CVPR 2016), min-max scaled to [0, 255]; (size, size, 3), size 112 for LEARNet.
* ``apex``: the aligned apex frame alone (the control that shows the signal is in the motion).
* ``flow``: onset -> apex optical flow u, v and optical strain (STSTNet-style), size 28 by default.

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
from mer_keras.preprocess.face import align_clip
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


def config_key(cfg: RepresentationConfig) -> str:
    """Folder name of a representation config in the cache: representation and a hash of every parameter."""
    h = hashlib.sha256(json.dumps({"v": PIPELINE_VERSION, **asdict(cfg)}, sort_keys=True).encode())
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
        (N, size, size, 3) float32 array in [0, 255].
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
