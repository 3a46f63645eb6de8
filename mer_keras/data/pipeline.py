"""From :class:`~mer_keras.data.records.Sample` records to network inputs, through a per-clip cache.

The representations themselves (``dynamic_image``, ``apex``, ``flow``, ``sequence``) are defined
once, in :mod:`mer_keras.preprocess.representation` (no TensorFlow; shared with the ``edge/``
runner) and re-exported here. This module reads the frames a record needs and caches the result:
one ``.npy`` per clip in ``<cache>/clips/<representation>-<hash of the parameters>/<clip key>.npy``,
written atomically, so re-running with the same parameters does no work, other parameters make a
new folder, and a killed run resumes. The clip key covers every frame file that enters the
representation (:func:`clip_key`): a frame replaced since makes a new entry. Two processes filling
one cache take each entry's lock: the second waits and reuses what the first wrote.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np

from mer_keras.atomic import atomic_path, lock_path, locked, remove_leftovers, restore_errno, sweep_leftovers
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


def frames_used(sample: Sample, cfg: RepresentationConfig | None = None) -> list[int]:
    """Indices (into ``sample.frame_paths``) of the frames a representation is built from, in order.

    ``dynamic_image``: every frame onset..offset; ``sequence``: the ``cfg.frames`` sampled over
    onset..offset (:func:`sequence_indices`; repeated when the clip is shorter); ``apex`` and
    ``flow``: onset (the face is aligned on it) and apex. ``cfg`` None: every frame onset..offset.
    """
    if cfg is None or cfg.representation == "dynamic_image":
        return list(range(sample.onset, sample.offset + 1))
    if cfg.representation == "sequence":
        return sequence_indices(sample.onset, sample.offset, cfg.frames)
    return [sample.onset, sample.apex]


def sample_representation(sample: Sample, cfg: RepresentationConfig) -> np.ndarray:
    """:func:`representation_from_frames` for a :class:`Sample`, reading only the frames needed
    (:func:`frames_used`), each once.

    Returns:
        ``cfg.input_shape`` float32 in [0, 255].
    Raises:
        DataError: a frame unreadable (named), or of another size than the clip's onset frame
            (the clip, the frame file and both sizes named). FaceNotFoundError: no face on the onset frame.
    """
    wanted = frames_used(sample, cfg)
    frames = {i: read_frame(sample.frame_paths[i]) for i in sorted(set(wanted))}
    _check_same_size(sample, frames)
    clip = [frames[i] for i in wanted]
    if cfg.representation == "dynamic_image":
        return representation_from_frames(clip, 0, sample.apex - sample.onset, len(clip) - 1, cfg, sample.key)
    if cfg.representation == "sequence":
        # the T frames already picked: sampling them again over 0..T-1 keeps them all, in order
        return representation_from_frames(clip, 0, 0, len(clip) - 1, cfg, sample.key)
    return representation_from_frames(clip, 0, 1, 1, cfg, sample.key)


def _check_same_size(sample: Sample, frames: dict[int, np.ndarray]) -> None:
    """Raise DataError if a frame of ``frames`` ({index: (H, W, 3) image}) differs in size from the onset frame."""
    h0, w0 = frames[sample.onset].shape[:2]
    for i, frame in frames.items():
        h, w = frame.shape[:2]
        if (h, w) != (h0, w0):
            raise DataError(f"clip {sample.key}: frame {sample.frame_paths[i]} is {w} x {h} px but the onset frame "
                            f"{sample.frame_paths[sample.onset]} is {w0} x {h0} px; every frame of a clip must have "
                            "one size (resize or replace that frame)")


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


def clip_key(sample: Sample, cfg: RepresentationConfig | None = None) -> str:
    """Cache file stem of a clip: a hash of the content its representation is made from.

    Covers the clip's key, its onset, apex and offset indices and frame count, and for every frame
    that enters the representation (:func:`frames_used`: onset..offset for the dynamic image, the
    sampled frames for a sequence, onset and apex for apex and flow; ``cfg`` None: onset..offset)
    the file's path, size, inode number, modification time and status-change time (ctime), in
    nanoseconds. A frame replaced (a new inode) or rewritten in place (a new ctime, even when the
    size and modification time were kept, as ``cp -p`` or ``rsync -t`` keep them) gives a new key,
    so the clip is computed again. A missing frame hashes as missing. Only ``os.stat`` calls, no
    file is read: a few microseconds per frame (about 0.4 ms for a 100-frame dynamic image).

    Returns:
        20 hexadecimal characters.
    """
    h = hashlib.sha256(f"{sample.key}|{sample.onset}|{sample.apex}|{sample.offset}|{len(sample.frame_paths)}".encode())
    for i in sorted(set(frames_used(sample, cfg))):
        p = sample.frame_paths[i]
        try:
            st = os.stat(p)
            h.update(f"{p}|{st.st_size}|{st.st_ino}|{st.st_mtime_ns}|{st.st_ctime_ns}\n".encode())
        except OSError:
            h.update(f"{p}|missing\n".encode())
    return h.hexdigest()[:20]


def cache_path(cache_dir: Path, sample: Sample, cfg: RepresentationConfig) -> Path:
    """``<cache_dir>/clips/<config key>/<clip key>.npy`` (:func:`config_key`, :func:`clip_key`)."""
    return Path(cache_dir) / "clips" / config_key(cfg) / f"{clip_key(sample, cfg)}.npy"


def _prepare_one(job) -> tuple[int, str | None]:
    """Build one clip's representation and store it atomically; (index, error or None).

    Holds the entry's lock: a clip another process is building is waited for, then found written.

    Raises:
        OSError: the entry cannot be written (``cannot write <path>: <reason>``). A bad clip is
            not raised but returned (its message).
    """
    index, sample, cfg, path = job
    with locked(lock_path(path)):
        if path.exists():  # written by another process while this one waited
            return index, None
        remove_leftovers(path)  # the temporary file of a writer killed before it finished
        try:
            x = sample_representation(sample, cfg)
        except (MerKerasError, FileNotFoundError) as exc:  # a bad clip (FaceNotFoundError is a DataError)
            return index, str(exc)
        with atomic_path(path) as tmp:
            np.save(tmp, x.astype(np.float32), allow_pickle=False)
    return index, None


# -- worker processes ---------------------------------------------------------------------------
#
# Ctrl-C reaches every process of the terminal's process group: the workers ignore SIGINT (from
# their start: the main process spawns them with SIGINT blocked) and leave the decision to the
# main process. The main process stops them with SIGTERM, on an interrupt or any error: a worker
# busy with a clip stops there (its temporary file removed, its lock released), an idle one exits
# at once. A worker whose main process dies (even by SIGKILL) gets SIGTERM from the kernel.

#: In a worker: inside a job (SIGTERM stops the job and cleans up), stopping (later signals ignored).
_worker_state = {"busy": False, "stopping": False}


class _WorkerStopped(BaseException):
    """Raised in a busy worker by SIGTERM, so that the job's cleanup runs before the worker exits."""


def _worker_signal(signum, frame) -> None:
    if _worker_state["stopping"]:
        return
    _worker_state["stopping"] = True
    if _worker_state["busy"]:
        raise _WorkerStopped(signum)
    os._exit(128 + signum)


def _worker_unraisable(unraisable) -> None:
    """A worker's ``sys.unraisablehook``. SIGTERM's exception raised while Python ran a callback it
    cannot propagate from (a garbage-collector callback, e.g. XLA's) is only reported there and the
    job would go on: the signal is sent again, to stop the job in its own code after its cleanup.
    Anything else is reported as usual."""
    if isinstance(unraisable.exc_value, _WorkerStopped):
        import threading

        _worker_state["stopping"] = False  # sent from a thread: the handler runs back in the job's code
        threading.Timer(0.05, os.kill, (os.getpid(), unraisable.exc_value.args[0])).start()
        return
    sys.__unraisablehook__(unraisable)


def _worker_job(job) -> tuple[int, str | None]:
    """A worker's :func:`_prepare_one`: stopped by SIGTERM after its cleanup (exit code 128 + signal)."""
    try:
        _worker_state["busy"] = True
        return _prepare_one(job)
    except _WorkerStopped as exc:
        os._exit(128 + exc.args[0])
    finally:
        _worker_state["busy"] = False


def _worker_init(parent: int) -> None:
    """Worker start-up: one OpenCV thread per process (N workers do not oversubscribe N cores);
    signals as described above."""
    cv2.setNumThreads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _worker_signal)
    sys.unraisablehook = _worker_unraisable
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG (Linux)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the main process died before the line above
        os._exit(128 + signal.SIGTERM)


def _stop_workers(pool) -> None:
    """Stop a pool's worker processes now (SIGTERM, then SIGKILL after 10 s) and wait for them."""
    import time

    procs = list((getattr(pool, "_processes", None) or {}).values())
    for p in procs:
        if p.is_alive():
            p.terminate()
    deadline = time.monotonic() + 10
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()


def prepare(samples: Sequence[Sample], cfg: RepresentationConfig | Sequence[RepresentationConfig], cache_dir: Path,
            workers: int = 1, progress: Callable[[int, int], None] | None = None) -> dict[int, str]:
    """Fill the per-clip cache for ``samples`` in one or several representations.

    Clips already cached are not recomputed. Each clip is written as soon as it is done
    (atomically, holding its entry's lock: another process filling the same cache waits for it and
    reuses it), so a killed run resumes where it stopped. ``workers > 1`` runs the clips in that
    many processes (spawned once for all representations; one OpenCV thread each). An exception in
    this process (KeyboardInterrupt, an error) stops the workers at once (SIGTERM: each removes its
    unfinished file) and is raised once they are gone; every clip written stays cached.

    Args:
        cfg: one representation config or several.
        progress: optional callable(done, total) over all (clip, representation) pairs.
    Returns:
        {sample index: reason} for every clip that failed in any representation.
    Raises:
        OSError: a cache entry cannot be written (``cannot write <path>: No space left on device``).
    """
    cfgs = [cfg] if isinstance(cfg, RepresentationConfig) else list(cfg)
    for c in cfgs:  # what writers killed in an earlier run left (temporary files, lock files)
        sweep_leftovers(Path(cache_dir) / "clips" / config_key(c))
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
    results = _in_workers(jobs, workers) if parallel else map(_prepare_one, jobs)
    try:
        for i, err in results:
            if err is not None:
                errors.setdefault(i, err)
            done += 1
            if progress:
                progress(done, total)
    finally:
        if parallel:
            results.close()  # an exception out of the loop body (an interrupt in progress()) stops the workers now
    return errors


def _in_workers(jobs: list, workers: int):
    """Yield ``(index, error or None)`` of each job run in ``workers`` spawned processes, in the
    order they finish.

    The main thread waits in steps of 0.2 s, so that a signal delivered to another of its threads
    (a progress bar's) is handled at once. An exception here (KeyboardInterrupt, a worker's error
    such as a full disk) stops every worker before it propagates.
    """
    import functools
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=functools.partial(_worker_init, os.getpid()))
    try:
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # inherited by the workers
        try:
            pending = {pool.submit(_worker_job, job) for job in jobs}
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        while pending:
            finished, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for future in finished:
                try:
                    result = future.result()
                except OSError as exc:  # a cache entry that cannot be written, in a worker
                    restore_errno(exc)
                    raise
                yield result
    except BaseException:
        _stop_workers(pool)  # not cancel_futures: a cancelled future breaks the pool's own clean-up
        raise
    finally:
        pool.shutdown(wait=True)


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
