"""A generic CSV manifest, so any database or precomputed input can be used.

Columns: ``subject``, ``label`` and either ``path`` (one image per sample, e.g. an apex frame or
a precomputed flow image; its channels are the model input) or ``frames`` (a folder of frames,
or a video file, decoded once into the cache as frames 1..N) with optional ``onset``, ``apex``,
``offset`` (frame numbers as in the file names, or 1-based frame numbers of a video) and
``dataset``. Paths are relative to the CSV file.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from mer_keras.data.checks import rows_of, unify_labels
from mer_keras.data.database import attempt, collect, make_sample
from mer_keras.data.records import Dataset
from mer_keras.data.sheets import parse_frame_number, short_reason
from mer_keras.errors import DataError, MissingFileError
from mer_keras.preprocess.cache import default_cache_dir
from mer_keras.preprocess.images import read_image
from mer_keras.preprocess.video import extract_frames, is_video

#: Smallest side of a ready input image, px: smaller ones hold no representation to upscale.
MIN_IMAGE_SIDE = 8


def resolved(path: Path, where: str) -> Path:
    """``path`` made absolute with links followed.

    Raises:
        DataError: a loop of symbolic links (``where`` names the row).
    """
    try:
        return path.resolve()
    except (RuntimeError, OSError) as exc:  # Python 3.11 raises RuntimeError for a loop of links
        raise DataError(f"{where}: {path} is a loop of symbolic links ({type(exc).__name__})") from None


@dataclass(frozen=True)
class ImageRecord:
    """One precomputed input image: subject, label, absolute path, source (csv:row)."""

    subject: str
    label: str
    path: str
    dataset: str
    source: str


def load(csv_path, strict: bool = False, fps: float = 0.0, apex_policy: str = "midpoint",
         cache_dir=None) -> tuple[Dataset, list[ImageRecord]]:
    """Read a manifest.

    Returns:
        (clip records from ``frames`` rows, image records from ``path`` rows).
    Labels that differ only by case or spaces are one class, and ready-image rows beside clip rows
    are fed as they are: warnings in ``clips.warnings``. Near-duplicate labels are an error
    (:func:`mer_keras.data.checks.unify_labels`).

    Raises:
        MissingFileError: missing CSV. DataError: not a readable CSV, missing columns, labels that
        look like typos of each other, or (when ``strict``)
        a row with neither or both of path/frames, an empty label or subject, a missing,
        unreadable, truncated or tiny (< 8 px) image, a bad frame folder or video (names csv:row).
    """
    csv_path = Path(csv_path)
    if csv_path.is_symlink() and not csv_path.exists():
        raise DataError(f"{csv_path}: a symbolic link to nothing or a loop of links, not a manifest CSV")
    if csv_path.is_dir():
        raise DataError(f"{csv_path}: a folder, not a manifest CSV (give the .csv file)")
    if not csv_path.is_file():
        raise MissingFileError(f"manifest {csv_path} does not exist")
    try:
        df = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except Exception as exc:  # EmptyDataError, ParserError, UnicodeDecodeError, ...: none names the file
        raise DataError(f"{csv_path}: not a readable manifest CSV ({short_reason(exc)})") from None
    cols = {c.strip().lower(): c for c in df.columns}
    missing = [c for c in ("subject", "label") if c not in cols]
    if missing or not ({"path", "frames"} & set(cols)):
        raise DataError(f"{csv_path}: needs columns subject, label and path or frames; has {list(df.columns)}")
    base = csv_path.parent
    clips, images = Dataset("manifest", root=str(csv_path)), []
    for row_no, r in enumerate(df.to_dict("records"), start=2):
        get = lambda k: str(r.get(cols.get(k, ""), "")).strip()  # noqa: E731
        where = f"{csv_path}:{row_no}"
        subject, label, dataset = get("subject"), get("label"), get("dataset") or "manifest"
        path, frames = get("path"), get("frames")

        def check():
            if not subject or not label:
                raise DataError(f"{where}: empty subject or label")
            if bool(path) == bool(frames):
                raise DataError(f"{where}: give exactly one of path or frames")

        if path:
            def image(where=where, subject=subject, label=label, dataset=dataset, path=path):
                check()
                p = resolved(base / path, where)
                if not p.is_file():
                    raise DataError(f"{where}: image {p} does not exist")
                img = read_image(p)  # an unreadable or truncated image is found here, not in the middle of training
                if min(img.shape[:2]) < MIN_IMAGE_SIDE:
                    raise DataError(f"{where}: image {p} is {img.shape[1]} x {img.shape[0]} px; a ready input needs "
                                    f"at least {MIN_IMAGE_SIDE} px a side (it would be upscaled from nothing)")
                return ImageRecord(subject, label, str(p), dataset, where)

            record = attempt(where, image, strict, clips.skipped)
            if record is not None:
                images.append(record)
            continue

        def build(where=where, subject=subject, label=label, dataset=dataset, frames=frames):
            check()
            folder = resolved(base / frames, where)
            if is_video(folder):
                try:
                    folder = extract_frames(folder, default_cache_dir(cache_dir))
                except DataError as exc:
                    raise DataError(f"{where}: {exc}") from None
            s = make_sample(dataset, subject, Path(frames).stem, folder,
                            parse_frame_number(get("onset"), where), parse_frame_number(get("apex"), where),
                            parse_frame_number(get("offset"), where), (), label, fps, where, apex_policy)
            return s

        collect(clips, where, build, strict)
    mixed = []
    if clips.samples and images:
        mixed = [f"{csv_path}: mixes ready-image rows (path: {rows_of([i.source for i in images])}) and clip rows "
                 f"(frames: {rows_of([s.source for s in clips.samples])}): the images are fed as they are, the clips "
                 "as the model's representation; make sure the images are that representation"]
    labels, spellings = unify_labels([s.label for s in clips.samples] + [i.label for i in images],
                                     [s.source for s in clips.samples] + [i.source for i in images])
    clips.warnings = mixed + spellings
    n = len(clips.samples)
    clips.samples = [replace(s, label=lab) for s, lab in zip(clips.samples, labels[:n])]
    images = [replace(i, label=lab) for i, lab in zip(images, labels[n:])]
    return clips, images
