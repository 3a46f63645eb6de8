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

from pathlib import Path

from mer_keras.data.database import LoadResult, collect, make_sample, resolve_root
from mer_keras.data.sheets import column, find_sheet, parse_aus, parse_frame_number, read_sheet

NAME = "casme2"
FPS = 200.0
SHEET_PATTERN = "CASME2-coding-*.xls*"
COLUMNS = ("Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion")
EMOTIONS = ("happiness", "surprise", "disgust", "repression", "others", "fear", "sadness")
#: The standard 5-class protocol (fear and sadness are dropped: too few samples).
CLASSES = ("happiness", "surprise", "disgust", "repression", "others")
FRAME_FOLDERS = {"raw": "CASME2_RAW_selected", "cropped": "Cropped"}


def load(root=None, frames: str = "auto", strict: bool = False, apex_policy: str = "midpoint") -> LoadResult:
    """Read CASME II records.

    Args:
        root: database folder (or ``$MER_DATA_ROOT/CASME2``).
        frames: ``raw`` (CASME2_RAW_selected), ``cropped`` (Cropped) or ``auto`` (raw if present).
        strict: raise on the first bad clip instead of skipping it.
    Returns:
        :class:`LoadResult`; ``Sample.emotion`` and ``label`` are the lower-cased Estimated Emotion.
    Raises:
        FileNotFoundError: no root, sheet or frame folder. ValueError: header or (strict) clip errors.
    """
    root = resolve_root(root, "CASME2")
    sheet = find_sheet(root, SHEET_PATTERN)
    if frames == "auto":
        frames = "raw" if (root / FRAME_FOLDERS["raw"]).is_dir() else "cropped"
    if frames not in FRAME_FOLDERS:
        raise ValueError(f"unknown CASME II frame set {frames!r}; expected raw, cropped or auto")
    frame_root = root / FRAME_FOLDERS[frames]
    if not frame_root.is_dir():
        raise FileNotFoundError(f"CASME II frame folder {frame_root} does not exist")
    df, _ = read_sheet(sheet, COLUMNS)
    cols = {c: column(df, c) for c in COLUMNS}
    result = LoadResult()
    for r in df.to_dict("records"):
        where = f"{sheet}:{r['_row']}"

        def build(r=r, where=where):
            subject_cell = str(r[cols["Subject"]]).strip()
            if not subject_cell.replace(".0", "").isdigit():
                raise ValueError(f"{where}: Subject {subject_cell!r} is not a subject number")
            subject = f"sub{int(float(subject_cell)):02d}"
            clip = str(r[cols["Filename"]]).strip()
            emotion = str(r[cols["Estimated Emotion"]]).strip().lower()
            if emotion not in EMOTIONS:
                raise ValueError(f"{where}: unknown emotion {emotion!r}; expected one of {EMOTIONS}")
            return make_sample(NAME, subject, clip, frame_root / subject / clip,
                               parse_frame_number(r[cols["OnsetFrame"]], where),
                               parse_frame_number(r[cols["ApexFrame"]], where),
                               parse_frame_number(r[cols["OffsetFrame"]], where),
                               parse_aus(r[cols["Action Units"]]), emotion, FPS, where, apex_policy)

        collect(result, where, build, strict)
    return result
