"""CASME II.

W.-J. Yan, X. Li, S.-J. Wang, G. Zhao, Y.-J. Liu, Y.-H. Chen, X. Fu, "CASME II: An Improved
Spontaneous Micro-Expression Database and the Baseline Evaluation", PLoS ONE 9(1) e86041, 2014.
200 fps, 26 subjects, 255 samples (247 in most protocols' 5-class set).

Layout (``root`` is the folder holding these)::

    CASME2-coding-20140508.xlsx              Subject | Filename | (unnamed) | OnsetFrame | ApexFrame |
                                             OffsetFrame | (unnamed) | Action Units | Estimated Emotion
    CASME2_RAW_selected/sub01/EP02_01f/img46.jpg ...      (or the cropped faces:)
    Cropped/sub01/EP02_01f/reg_img46.jpg ...

Quirks handled: Subject is an integer while folders are ``subNN``; some ApexFrame cells are '/'
(missing: filled by the apex policy, midpoint by default); frame files are sorted by number.
"""

from __future__ import annotations

from mer_keras.data.database import SheetSpec, load_sheet_database, resolve_root
from mer_keras.data.records import Dataset
from mer_keras.errors import MissingFileError, OptionError

EMOTIONS = ("happiness", "surprise", "disgust", "repression", "others", "fear", "sadness")
#: The standard 5-class protocol (fear and sadness are dropped: too few samples).
CLASSES = ("happiness", "surprise", "disgust", "repression", "others")
FRAME_FOLDERS = {"raw": "CASME2_RAW_selected", "cropped": "Cropped"}
SPEC = SheetSpec(
    name="casme2", fps=200.0, sheet_pattern="CASME2-coding-*.xls*",
    columns={"subject": "Subject", "clip": "Filename", "onset": "OnsetFrame", "apex": "ApexFrame",
             "offset": "OffsetFrame", "aus": "Action Units", "emotion": "Estimated Emotion"},
    frame_dir="{subject}/{clip}", subject_format="sub{:02d}", emotions=EMOTIONS)
NAME, FPS = SPEC.name, SPEC.fps


def load(root=None, frames: str = "auto", strict: bool = False, apex_policy: str = "midpoint") -> Dataset:
    """Read CASME II records.

    Args:
        root: database folder (or ``$MER_DATA_ROOT/CASME2``).
        frames: ``raw`` (CASME2_RAW_selected), ``cropped`` (Cropped) or ``auto`` (raw if present).
        strict: raise on the first bad clip instead of skipping it.
    Returns:
        :class:`~mer_keras.data.records.Dataset`; ``Sample.emotion`` and ``label`` are the lower-cased
        Estimated Emotion.
    Raises:
        OptionError: unknown ``frames``. MissingFileError: no root, sheet or frame folder.
        DataError: header or (strict) clip errors.
    """
    root = resolve_root(root, "CASME2")
    if frames == "auto":
        frames = "raw" if (root / FRAME_FOLDERS["raw"]).is_dir() else "cropped"
    if frames not in FRAME_FOLDERS:
        raise OptionError(f"unknown CASME II frame set {frames!r}; expected raw, cropped or auto")
    frame_root = root / FRAME_FOLDERS[frames]
    if not frame_root.is_dir():
        raise MissingFileError(f"CASME II frame folder {frame_root} does not exist")
    return load_sheet_database(SPEC, root, frame_root, strict, apex_policy)
