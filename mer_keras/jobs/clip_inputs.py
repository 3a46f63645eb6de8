"""Step *clip inputs* of ``predict``: the videos, frame folders and images it is given, turned into model inputs
as the model's metadata says (onset, apex and offset from the options or found), one row per input.
"""

from __future__ import annotations

from pathlib import Path

from mer_keras.errors import MissingFileError

#: Image files read as ready representation images (or onset / apex pairs).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def frame_number(sample, index: int) -> int:
    """The number of frame ``index`` (0-based in the clip) as the user sees it: the clip's own numbering
    (from its frame files or sheet) where it has one, else the index."""
    return sample.frame_numbers[index] if sample.frame_numbers else index


def clip_inputs(opts, rep, cache) -> tuple[list[dict], list]:
    """One row description per clip of ``opts.inputs`` (``opts``: the
    :class:`~mer_keras.jobs.predict.PredictOptions`) and the clips to preprocess.

    Returns:
        (rows, items) in input order: each row has ``input``, ``onset``, ``apex``, ``offset`` (frame
        numbers; None for a ready image); items are :class:`~mer_keras.data.records.Sample` or
        ready-image paths.
    Raises:
        MissingFileError: an input that does not exist. DataError: an input that is neither a
            video, a frame folder nor an image, an odd number of images with ``pairs``, or frame
            numbers outside the clip (each named).
    """
    from mer_keras.data.database import make_sample
    from mer_keras.data.records import Sample
    from mer_keras.errors import DataError
    from mer_keras.preprocess.video import VIDEO_SUFFIXES, extract_frames, is_video

    rows, items, pending = [], [], None
    for name in opts.inputs or []:
        p = Path(name)
        if not p.exists():
            raise MissingFileError(f"{name}: no such video, frame folder or image")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            if not opts.pairs:
                rows.append({"input": name, "onset": None, "apex": None, "offset": None})
                items.append(p)
            elif pending is None:
                pending = p
            else:
                rows.append({"input": f"{pending},{p}", "onset": None, "apex": None, "offset": None})
                items.append(Sample(subject="input", clip_id=f"{pending.stem}-{p.stem}",
                                    frame_paths=(str(pending), str(p)), onset=0, apex=1, offset=1, aus=(), emotion="",
                                    label="", database="input", fps=0.0, source=f"{pending},{p}"))
                pending = None
            continue
        if p.is_dir():
            folder = p
            if p.suffix.lower() in (*IMAGE_SUFFIXES, *VIDEO_SUFFIXES) and not any(
                    f.suffix.lower() in IMAGE_SUFFIXES for f in p.iterdir()):
                raise DataError(f"{name}: a folder named like an image or video file, holding no frame images; "
                                "expected an image or video file, or a folder of frames")
        elif is_video(p):
            folder = extract_frames(p, cache)
        else:
            raise DataError(f"{name}: not a video (.mp4, .avi, .mov, ...), a frame folder or an image")
        sample = make_sample("input", p.parent.name or ".", p.name, folder, opts.onset, opts.apex, opts.offset, (),
                             "", 0.0, str(p), apex_policy=opts.apex_policy)
        rows.append({"input": name, "onset": frame_number(sample, sample.onset),
                     "apex": frame_number(sample, sample.apex), "offset": frame_number(sample, sample.offset)})
        items.append(sample)
    if pending is not None:
        raise DataError(f"--pairs: {pending} has no apex image after it (images are read two at a time: onset, apex)")
    return rows, items


def note_long_clips(items: list, meta: dict, console) -> None:
    """Say when an input holds far more than one expression's time: it is classified as one clip
    (one label), while ``--spot`` finds and classifies each expression in it."""
    window = (meta.get("window") or {}).get("seconds")
    for item in items:
        fps = getattr(item, "fps", 0.0) or (meta.get("window") or {}).get("fps")
        if isinstance(item, Path) or not window or not fps:
            continue
        seconds = len(item.frame_paths) / fps
        if seconds > 4 * window:
            console.print(f"[yellow]note:[/] {item.source}: {seconds:.1f} s at {fps:g} fps, {seconds / window:.0f} "
                          f"times the model's {window:g} s window, is classified as one clip (one label); "
                          "--spot finds and classifies each expression in it", soft_wrap=True)


def inputs_x(items: list, rep, cache):
    """(N, *input_shape) float32 in [0, 255] for clips and ready images, in ``items`` order."""
    import numpy as np

    from mer_keras.data.pipeline import build_inputs, image_inputs
    from mer_keras.errors import DataError

    samples = [i for i in items if not isinstance(i, Path)]
    images = [str(i) for i in items if isinstance(i, Path)]
    if images and rep.representation == "sequence":
        raise DataError(f"{images[0]}: a single image cannot feed a sequence model (it takes {rep.frames} frames of "
                        "a clip): give a video or a frame folder")
    parts = {}
    if samples:
        parts["clip"] = iter(build_inputs(samples, rep, cache_dir=cache))
    if images:
        parts["image"] = iter(image_inputs(images, rep.size, rep.channels, rep.regions))
    return np.stack([next(parts["image" if isinstance(i, Path) else "clip"]) for i in items])
