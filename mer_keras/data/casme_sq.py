"""CAS(ME)^2 (CASME_sq), micro-expressions.

F. Qu, S.-J. Wang, W.-J. Yan, H. Li, S. Wu, X. Fu, "CAS(ME)^2: A Database for Spontaneous Macro-
Expression and Micro-Expression Spotting and Recognition", IEEE Transactions on Affective
Computing 9(4) 2018. 30 fps long videos, 22 subjects, 57 micro- and 300 macro-expressions.

Layout (``root`` holds these)::

    CAS(ME)^2code_final.xlsx (or "...(Updated).xlsx"), three sheets:
        1st sheet, no header: subject id | clip ("anger1_1" = video name _ expression number) |
            onset | apex | offset | AUs | emotion (negative/positive/surprise/others) |
            type ("micro-expression" / "macro-expression") | self-reported emotion
        "naming rule1": subject folder ("s15") | file prefix ("15") | subject id (as in the 1st sheet)
        "naming rule2": video code (101) | video name ("anger1")
    rawpic/s15/15_0101disgustingteeth/img1.jpg ...    (the folder starts with <prefix>_<code>)

Only micro-expression rows are read (``micro_only``). Rows whose offset is 0 (not coded) are
skipped with their row: the clip's extent within the long video is unknown. The sheet layout
follows public descriptions and loaders; check the first run's counts against your copy.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from mer_keras.data.database import collect, make_sample, resolve_root
from mer_keras.data.records import Dataset
from mer_keras.data.sheets import find_sheet, parse_aus, parse_frame_number, short_reason
from mer_keras.errors import DataError, MissingFileError

NAME = "casme_sq"
FPS = 30.0
EMOTIONS = ("negative", "positive", "surprise", "others")
CLASSES = EMOTIONS


def _naming_rules(xl: pd.ExcelFile, sheet: Path) -> tuple[dict[int, tuple[str, str]], dict[str, str]]:
    names = {n.strip().lower(): n for n in xl.sheet_names}
    if "naming rule1" not in names or "naming rule2" not in names:
        raise DataError(f"{sheet}: sheets 'naming rule1' and 'naming rule2' not found (has {xl.sheet_names})")
    subjects = {}
    for row in xl.parse(names["naming rule1"], header=None, dtype=str).itertuples(index=False):
        cells = [str(c).strip() for c in row if str(c).strip() not in ("", "nan")]
        folder = next((c for c in cells if re.fullmatch(r"s\d+", c)), None)
        numbers = [c for c in cells if re.fullmatch(r"\d+(\.0)?", c)]
        if folder and len(numbers) >= 2:
            subjects[int(float(numbers[-1]))] = (folder, numbers[0].split(".")[0])
    videos = {}
    for row in xl.parse(names["naming rule2"], header=None, dtype=str).itertuples(index=False):
        cells = [str(c).strip() for c in row if str(c).strip() not in ("", "nan")]
        code = next((c for c in cells if re.fullmatch(r"\d+(\.0)?", c)), None)
        name = next((c for c in cells if not re.fullmatch(r"\d+(\.0)?", c)), None)
        if code and name:
            videos[name.lower()] = f"{int(float(code)):04d}"
    return subjects, videos


def read_code_sheet(root=None) -> tuple[Path, Path, dict[int, tuple[str, str]], dict[str, str], pd.DataFrame]:
    """The code sheet of a CAS(ME)^2 folder (the clips of ``load`` and the long videos of spotting).

    Returns:
        (sheet path, ``rawpic`` folder, {subject id: (folder, file prefix)}, {video name: code},
        the first sheet's rows without a header).
    Raises:
        MissingFileError: no root, sheet or ``rawpic`` folder. DataError: an unreadable sheet or
        missing naming-rule sheets (names the sheet).
    """
    root = resolve_root(root, "CASME_sq")
    sheet = find_sheet(root, "CAS(ME)^2code_final*.xls*")
    frame_root = root / "rawpic"
    if not frame_root.is_dir():
        raise MissingFileError(f"CAS(ME)^2 frame folder {frame_root} does not exist")
    try:
        xl = pd.ExcelFile(sheet)
        subjects, videos = _naming_rules(xl, sheet)
        codes = xl.parse(xl.sheet_names[0], header=None, dtype=object)
    except Exception as exc:  # pandas, openpyxl, xlrd and zipfile raise many types for a damaged file
        if isinstance(exc, DataError) and str(sheet) in str(exc):
            raise  # already names the sheet (missing naming-rule sheets)
        raise DataError(f"{sheet}: not a readable coding sheet ({short_reason(exc)})") from None
    return sheet, frame_root, subjects, videos, codes


def load(root=None, strict: bool = False, apex_policy: str = "midpoint", micro_only: bool = True) -> Dataset:
    """Read CAS(ME)^2 micro-expression records (see the module docstring for the layout).

    Raises:
        MissingFileError: no root, sheet or ``rawpic`` folder. DataError: an unreadable sheet,
        missing naming-rule sheets; with ``strict``, the first bad row (names sheet and row).
    """
    sheet, frame_root, subjects, videos, codes = read_code_sheet(root)
    result = Dataset(NAME)
    for i, row in enumerate(codes.itertuples(index=False), start=1):
        cells = list(row) + [None] * 9
        kind = str(cells[7]).lower()
        if micro_only and "micro" not in kind:
            continue
        where = f"{sheet}:{i}"

        def build(cells=cells, where=where):
            try:
                folder, prefix = subjects[int(float(cells[0]))]
            except (KeyError, TypeError, ValueError, OverflowError):
                raise DataError(f"{where}: subject id {cells[0]!r} is not in 'naming rule1'") from None
            clip = str(cells[1]).strip()
            video = clip.split("_")[0].lower()
            if video not in videos:
                raise DataError(f"{where}: video {video!r} of clip {clip!r} is not in 'naming rule2'")
            offset = parse_frame_number(cells[4], where, missing=("/", "-1", "", "nan", "none", "0"))
            if offset is None:
                raise DataError(f"{where}: offset of clip {clip} is not coded (0)")
            base = frame_root / folder
            matches = sorted(base.glob(f"{prefix}_{videos[video]}*")) if base.is_dir() else []
            if not matches:
                raise MissingFileError(f"{where}: no folder {base}/{prefix}_{videos[video]}* for clip {clip}")
            emotion = str(cells[6]).strip().lower()
            if emotion not in EMOTIONS:
                raise DataError(f"{where}: unknown emotion {cells[6]!r}; expected one of {EMOTIONS}")
            return make_sample(NAME, folder, clip, matches[0], parse_frame_number(cells[2], where),
                               parse_frame_number(cells[3], where, missing=("/", "-1", "", "nan", "none", "0")),
                               offset, parse_aus(cells[5]), emotion, FPS, where, apex_policy)

        collect(result, where, build, strict)
    return result
