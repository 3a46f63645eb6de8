"""CASME (CASME I).

W.-J. Yan, Q. Wu, Y.-J. Liu, S.-J. Wang, X. Fu, "CASME database: A dataset of spontaneous
micro-expressions collected from neutralized faces", IEEE FG 2013. 60 fps, 19 subjects, 195 samples.

Layout (``root`` is the folder holding these; verify the sheet name against your copy)::

    CASME-coding-*.xlsx      Subject | Filename | ... | OnsetF | ApexF1 | OffsetF | ... | Action Units | Emotion
    CASME_raw_selected/sub01/EP01_5/img1.jpg ...     (or the cropped faces: Cropped/sub01/...)

The usual 4-class protocol keeps disgust, repression, surprise and tense.
"""

from __future__ import annotations

from mer_keras.data.database import SheetSpec, load_sheet_database, resolve_root
from mer_keras.data.records import Dataset
from mer_keras.errors import MissingFileError

EMOTIONS = ("tense", "repression", "disgust", "surprise", "happiness", "fear", "sadness", "contempt")
CLASSES = ("disgust", "repression", "surprise", "tense")
SPEC = SheetSpec(
    name="casme", fps=60.0, sheet_pattern="CASME-coding*.xls*",
    columns={"subject": "Subject", "clip": "Filename", "onset": "OnsetF", "apex": "ApexF1", "offset": "OffsetF",
             "aus": "Action Units", "emotion": "Emotion"},
    frame_dir="{subject}/{clip}", subject_format="sub{:02d}", emotions=EMOTIONS)


def load(root=None, strict: bool = False, apex_policy: str = "midpoint") -> Dataset:
    """Read CASME I records; frames from ``CASME_raw_selected/`` if present, else ``Cropped/``.

    Raises:
        MissingFileError: no root, sheet or frame folder. DataError: header or (strict) clip errors.
    """
    root = resolve_root(root, "CASME")
    frame_root = next((root / d for d in ("CASME_raw_selected", "Cropped") if (root / d).is_dir()), None)
    if frame_root is None:
        raise MissingFileError(f"CASME frame folder CASME_raw_selected/ or Cropped/ not found under {root}")
    return load_sheet_database(SPEC, root, frame_root, strict, apex_policy)
