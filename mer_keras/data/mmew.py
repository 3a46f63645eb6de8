"""MMEW (micro part).

X. Ben, Y. Ren, J. Zhang, S.-J. Wang, K. Kpalma, W. Meng, Y.-J. Liu, "Video-based Facial
Micro-Expression Analysis: A Survey of Datasets, Features and Algorithms", IEEE TPAMI 44(9) 2022
(introduces MMEW). 90 fps, 36 subjects, 300 micro-expressions.

Layout (``root`` holds these)::

    MMEW_Micro_Exp.xlsx      Subject | Filename | OnsetFrame | ApexFrame | OffsetFrame | Action Units |
                             Estimated Emotion | remarks
    Micro_Expression/happiness/S01_happiness_01/1.jpg ...    (folders grouped by emotion)

The 6-class set used here drops anger (8 samples): happiness, surprise, disgust, fear, sadness, others.
"""

from __future__ import annotations

from mer_keras.data.database import SheetSpec, load_sheet_database, resolve_root
from mer_keras.data.records import Dataset
from mer_keras.errors import MissingFileError

EMOTIONS = ("happiness", "surprise", "disgust", "fear", "sadness", "anger", "others")
CLASSES = ("happiness", "surprise", "disgust", "fear", "sadness", "others")
SPEC = SheetSpec(
    name="mmew", fps=90.0, sheet_pattern="MMEW_Micro_Exp*.xls*",
    columns={"subject": "Subject", "clip": "Filename", "onset": "OnsetFrame", "apex": "ApexFrame",
             "offset": "OffsetFrame", "aus": "Action Units", "emotion": "Estimated Emotion"},
    frame_dir="{emotion}/{clip}", emotions=EMOTIONS)


def load(root=None, strict: bool = False, apex_policy: str = "midpoint") -> Dataset:
    """Read MMEW micro-expression records (frames under ``Micro_Expression/``).

    Raises:
        MissingFileError: no root, sheet or frame folder. DataError: header or (strict) clip errors.
    """
    root = resolve_root(root, "MMEW")
    frame_root = root / "Micro_Expression"
    if not frame_root.is_dir():
        raise MissingFileError(f"MMEW frame folder {frame_root} does not exist")
    return load_sheet_database(SPEC, root, frame_root, strict, apex_policy)
