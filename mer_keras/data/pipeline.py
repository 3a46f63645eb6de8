"""From :class:`~mer_keras.data.records.Sample` records to network inputs, through a per-clip cache.

The representations themselves (``dynamic_image``, ``apex``, ``flow``, ``sequence``) are defined
once, in :mod:`mer_keras.preprocess.representation` (no TensorFlow; shared with the ``edge/``
runner) and re-exported here. This module reads the frames a record needs and caches the result:
one ``.npy`` per clip in ``<cache>/clips/<representation>-<hash of the parameters>/``, written
atomically, so re-running with the same parameters does no work, other parameters make a new
folder, and a killed run resumes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np

from mer_keras.atomic import atomic_path
from mer_keras.data.checks import check_finite_inputs
from mer_keras.data.records import Sample
from mer_keras.errors import DataError, MerKerasError
from mer_keras.preprocess.images import read_image
from mer_keras.preprocess.representation import (  # noqa: F401  (re-exported: the pipeline's public names)
    MOUTH_CORNERS,
    REGION_LAYOUTS,
    REPRESENTATIONS,
    RepresentationConfig,
    _channels,
    region_centres,
    region_flow_representation,
    representation_from_frames,
    sequence_indices,
)

PIPELINE_VERSION = 2  # 2: alignment, luma and dynamic image computed with preprocess/portable.py

#: Fields added after version 1; left out of the cache key while at their default so that caches
#: built before they existed stay valid.
_NEW_FIELD_DEFAULTS = {"frames": 8, "channels": 3, "regions": None, "flow_encoding": "fixed", "dynamic_image": "bilen"}


def read_frame(path: str) -> np.ndarray:
    """Read one frame as (H, W, 3) uint8 RGB (grayscale files are expanded).

    Raises:
        DataError: the file is missing, not a readable image or a truncated JPEG (the message
            names it; see :func:`mer_keras.preprocess.images.read_image`).
    """
    return cv2.cvtColor(read_image(path), cv2.COLOR_BGR2RGB)


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


def image_inputs(paths: Sequence[str], size: int, channels: int = 3, regions: str | None = None) -> np.ndarray:
    """Precomputed input images (manifest ``path`` rows), resized to ``size``.

    Args:
        regions: ``"htnet"``: the image is a whole-face flow image; HTNet's four regions are cut from
            it at fixed centres after the resize
            (:func:`~mer_keras.preprocess.representation.fixed_region_tiles`).
    Returns:
        (N, size, size, channels) float32 in [0, 255]: the image as stored, no alignment
        (channels 1: BT.601 luma).
    Raises:
        DataError: an unreadable image (named).
    """
    from mer_keras.preprocess.representation import fixed_region_tiles

    out = np.empty((len(paths), size, size, channels), np.float32)
    for i, p in enumerate(paths):
        img = cv2.resize(read_frame(p), (size, size), interpolation=cv2.INTER_AREA)
        out[i] = _channels(fixed_region_tiles(img) if regions == "htnet" else img, channels)
    check_finite_inputs(out, "the data", [str(p) for p in paths])
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
    except (MerKerasError, FileNotFoundError) as exc:  # a bad clip (FaceNotFoundError is a DataError)
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
        DataError (FaceNotFoundError...), MissingFileError: a clip cannot be built (the first failure,
            naming the clip).
    """
    if cache_dir is None:
        out = np.empty((len(samples), *cfg.input_shape), np.float32)
        for i, s in enumerate(samples):
            out[i] = sample_representation(s, cfg)
            if progress:
                progress(i + 1, len(samples))
        check_finite_inputs(out, "the data", [_input_name(s) for s in samples])
        return out
    errors = prepare(samples, cfg, Path(cache_dir), workers=workers, progress=progress)
    if errors:
        i = min(errors)
        raise DataError(f"{samples[i].source or samples[i].key}: {errors[i]}"
                        + (f" (and {len(errors) - 1} more bad clips)" if len(errors) > 1 else ""))
    out = np.empty((len(samples), *cfg.input_shape), np.float32)
    for i, s in enumerate(samples):
        out[i] = np.load(cache_path(Path(cache_dir), s, cfg), allow_pickle=False)
    check_finite_inputs(out, "the data", [_input_name(s, cache_path(Path(cache_dir), s, cfg)) for s in samples])
    return out


def _input_name(sample: Sample, cached: Path | None = None) -> str:
    """How an input is named in an error: the clip, its source, and the cache file it was read from."""
    where = f" from {sample.source}" if sample.source and sample.source != sample.key else ""
    return f"{sample.key}{where}" + (f" (cached as {cached})" if cached is not None else "")
