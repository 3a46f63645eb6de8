"""SAMM.

A. K. Davison, C. Lansley, N. Costen, K. Tan, M. H. Yap, "SAMM: A Spontaneous Micro-Facial
Movement Dataset", IEEE Transactions on Affective Computing 9(1) 116-129, 2018. 200 fps,
grayscale, 32 subjects, 159 micro-movements.

Layout (``root`` is the SAMM folder, or its parent)::

    SAMM_Micro_FACS_Codes_v2.xlsx    title and notes rows, then the header row: Subject | Filename |
                                     Inducement Code | Onset Frame | Apex Frame | Offset Frame |
                                     Duration | Micro | Action Units | Notes | Estimated Emotion |
                                     Objective Classes
    SAMM/006/006_1_2/006_05562.jpg ...

Quirks handled: the header row is found by content; Subject is a zero-padded string ("006") that
Excel may store as 6; Apex Frame -1 means missing (apex policy, midpoint by default); Action Units
may read "R12 + R15" or contain "or" (both AUs kept); "Others" is normalised to "other".
"""

from __future__ import annotations

from mer_keras.data.database import SheetSpec, load_sheet_database, resolve_root
from mer_keras.data.records import Dataset

EMOTIONS = ("anger", "contempt", "disgust", "fear", "happiness", "other", "sadness", "surprise")
#: The standard 5-class protocol.
CLASSES = ("anger", "contempt", "happiness", "surprise", "other")
SPEC = SheetSpec(
    name="samm", fps=200.0, sheet_pattern="SAMM_Micro_FACS_Codes*.xls*",
    columns={"subject": "Subject", "clip": "Filename", "onset": "Onset Frame", "apex": "Apex Frame",
             "offset": "Offset Frame", "aus": "Action Units", "emotion": "Estimated Emotion"},
    frame_dir="{subject}/{clip}", subject_format="{:03d}", emotions=EMOTIONS, aliases={"others": "other"})
NAME, FPS = SPEC.name, SPEC.fps


def load(root=None, strict: bool = False, apex_policy: str = "midpoint") -> Dataset:
    """Read SAMM records (see module docstring for the layout).

    Returns:
        :class:`~mer_keras.data.records.Dataset`; ``emotion``/``label`` are lower-cased ("Others" -> "other").
    Raises:
        MissingFileError: no root or sheet. DataError: header or (strict) clip errors.
    """
    root = resolve_root(root, "SAMM")
    frame_root = root / "SAMM" if (root / "SAMM").is_dir() else root
    return load_sheet_database(SPEC, root, frame_root, strict, apex_policy)
