"""The MEGC2019 composite as published optical-flow images (the STSTNet / HTNet / CausalNet layout).

Layout (as the public STSTNet and HTNet code ships it, e.g. HTNet's
``combined_3_class2_for_optical_flow.csv`` and ``datasets/STSNet_whole_norm_u_v_os/``)::

    ROOT/combined_3_class2_for_optical_flow.csv   dataset,sub,filename_o,label,apex,imagename,sub_filename
    ROOT/STSNet_whole_norm_u_v_os/{sub}_{filename_o} .png     (a space before ".png", as published)

``dataset`` is casme2, samm or smic; ``label`` is 0 negative, 1 positive, 2 surprise. Each PNG is
28 x 28 with the onset -> apex optical flow u, v and the optical strain, each channel min-max
normalised to 0..255 per image. An RGB reader gives u, v, strain (the project's channel order;
:func:`mer_keras.data.pipeline.read_frame` reads RGB); ``cv2.imread`` alone gives them reversed.
On the published images strain is the dark channel (mean about 25 of 255) and u the one that
anti-correlates with its own left-right mirror (tests/contract/test_megc2019_flow.py checks both
on the real set where it is present).

Subjects are ``<dataset>_<sub>`` (e.g. ``casme2_sub01``, ``samm_006``, ``smic_s1``): 68 subjects,
442 clips (CASME II 145, SAMM 133, SMIC-HS 164).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mer_keras.data.database import attempt
from mer_keras.data.manifest import ImageRecord
from mer_keras.data.records import Dataset
from mer_keras.data.sheets import short_reason
from mer_keras.errors import DataError, MissingFileError
from mer_keras.preprocess.images import read_image

SHEET = "combined_3_class2_for_optical_flow.csv"
IMAGE_DIR = "STSNet_whole_norm_u_v_os"
DATABASES = ("casme2", "samm", "smic")
LABELS = {"0": "negative", "1": "positive", "2": "surprise"}
CLASSES = ("negative", "positive", "surprise")
COLUMNS = ("dataset", "sub", "filename_o", "label")
#: The sliding window a model trained on these images uses on video (``metadata.json`` ``window``).
#: The images carry no onset, offset or frame rate, so it is the upper bound of a micro-expression's
#: duration, 0.5 s (Yan et al., "How fast are the leaked facial expressions: the duration of
#: micro-expressions", J. Nonverbal Behavior 2013), at 200 fps (CASME II and SAMM; SMIC-HS is
#: 100 fps), with a stride of half a window. ``edge.run`` rescales it to its video's frame rate.
WINDOW = {"seconds": 0.5, "frames": 100, "fps": 200.0, "stride_frames": 50}


def image_path(root: str | Path, sub: str, filename: str) -> Path:
    """The published file of one clip: ``ROOT/STSNet_whole_norm_u_v_os/{sub}_{filename} .png``."""
    return Path(root) / IMAGE_DIR / f"{sub}_{filename} .png"


def load(root: str | Path | None, strict: bool = False) -> Dataset:
    """Read the published composite flow layout under ``root``.

    Args:
        root: the folder holding the CSV and the image folder.
        strict: stop at the first bad row instead of skipping it.
    Returns:
        A :class:`~mer_keras.data.records.Dataset` named ``megc2019-flow`` whose ``images`` are
        one :class:`~mer_keras.data.manifest.ImageRecord` per clip (subject ``<dataset>_<sub>``,
        label in :data:`CLASSES`, ``dataset`` the source database) and whose ``skipped`` lists the
        bad rows with their reason.
    Raises:
        MissingFileError: no root, or no CSV in it.
        DataError: a CSV without the needed columns, a row duplicated (it would count twice), or,
            with ``strict``, the first bad row: a dataset other than casme2 / samm / smic, a label
            outside 0..2, an empty field, a missing or unreadable image (each message names the
            CSV file and row).
    """
    if root is None:
        raise MissingFileError("--data megc2019-flow needs --root: the folder holding " + SHEET)
    root = Path(root)
    sheet = root / SHEET
    if not sheet.is_file():
        raise MissingFileError(f"{sheet} does not exist: --root must hold {SHEET} and {IMAGE_DIR}/")
    try:
        df = pd.read_csv(sheet, dtype=str, keep_default_na=False)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{sheet}: not a readable CSV ({short_reason(exc)})") from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{sheet}: missing column(s) {missing}; has {list(df.columns)}")
    ds = Dataset("megc2019-flow", list(CLASSES), [], root=str(root))
    seen: dict[tuple[str, str, str], int] = {}
    for row_no, r in enumerate(df.to_dict("records"), start=2):
        where = f"{sheet}:{row_no}"
        database, sub, clip, label = (str(r[c]).strip() for c in COLUMNS)
        key = (database, sub, clip)
        if key in seen:
            raise DataError(f"{where}: duplicates row {seen[key]} ({database} {sub} {clip}); a clip must be listed "
                            "once")
        seen[key] = row_no

        def record(where=where, database=database, sub=sub, clip=clip, label=label):
            if database not in DATABASES:
                raise DataError(f"{where}: unknown dataset {database!r}; expected one of {', '.join(DATABASES)}")
            if label not in LABELS:
                raise DataError(f"{where}: label {label!r} is not 0, 1 or 2 (negative, positive, surprise)")
            if not sub or not clip:
                raise DataError(f"{where}: empty sub or filename_o")
            path = image_path(root, sub, clip)
            if not path.is_file():
                hint = " (a file without the space before .png exists: the published names have it)" \
                    if path.with_name(f"{sub}_{clip}.png").is_file() else ""
                raise DataError(f"{where}: image {path} does not exist{hint}")
            read_image(path)  # unreadable or truncated: found now, not in the middle of training
            return ImageRecord(f"{database}_{sub}", LABELS[label], str(path), database, where)

        image = attempt(where, record, strict, ds.skipped)
        if image is not None:
            ds.images.append(image)
    ds.counts = {db: {"samples": sum(i.dataset == db for i in ds.images),
                      "subjects": len({i.subject for i in ds.images if i.dataset == db}),
                      **{c: sum(i.dataset == db and i.label == c for i in ds.images) for c in CLASSES}}
                 for db in DATABASES}
    return ds
