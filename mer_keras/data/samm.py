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

from mer_keras.data.database import LoadResult, collect, make_sample, resolve_root
from mer_keras.data.sheets import column, find_sheet, parse_aus, parse_frame_number, read_sheet

NAME = "samm"
FPS = 200.0
SHEET_PATTERN = "SAMM_Micro_FACS_Codes*.xls*"
COLUMNS = ("Subject", "Filename", "Onset Frame", "Apex Frame", "Offset Frame", "Action Units", "Estimated Emotion")
EMOTIONS = ("anger", "contempt", "disgust", "fear", "happiness", "other", "sadness", "surprise")
#: The standard 5-class protocol.
CLASSES = ("anger", "contempt", "happiness", "surprise", "other")


def load(root=None, strict: bool = False, apex_policy: str = "midpoint") -> LoadResult:
    """Read SAMM records (see module docstring for the layout).

    Returns:
        :class:`LoadResult`; ``emotion``/``label`` are lower-cased ("Others" -> "other").
    Raises:
        FileNotFoundError: no root or sheet. ValueError: header or (strict) clip errors.
    """
    root = resolve_root(root, "SAMM")
    sheet = find_sheet(root, SHEET_PATTERN)
    frame_root = root / "SAMM" if (root / "SAMM").is_dir() else root
    df, _ = read_sheet(sheet, COLUMNS)
    cols = {c: column(df, c) for c in COLUMNS}
    result = LoadResult()
    for r in df.to_dict("records"):
        where = f"{sheet}:{r['_row']}"

        def build(r=r, where=where):
            subject_cell = str(r[cols["Subject"]]).strip()
            if not subject_cell.replace(".0", "").isdigit():
                raise ValueError(f"{where}: Subject {subject_cell!r} is not a subject number")
            subject = f"{int(float(subject_cell)):03d}"
            clip = str(r[cols["Filename"]]).strip()
            emotion = str(r[cols["Estimated Emotion"]]).strip().lower()
            emotion = {"others": "other"}.get(emotion, emotion)
            if emotion not in EMOTIONS:
                raise ValueError(f"{where}: unknown emotion {emotion!r}; expected one of {EMOTIONS}")
            return make_sample(NAME, subject, clip, frame_root / subject / clip,
                               parse_frame_number(r[cols["Onset Frame"]], where),
                               parse_frame_number(r[cols["Apex Frame"]], where),
                               parse_frame_number(r[cols["Offset Frame"]], where),
                               parse_aus(r[cols["Action Units"]]), emotion, FPS, where, apex_policy)

        collect(result, where, build, strict)
    return result
