"""Coding-sheet parsing shared by the database loaders.

Each helper raises :class:`~mer_keras.errors.DataError` (a missing file or folder:
:class:`~mer_keras.errors.MissingFileError`) whose message names the sheet and the row (Excel
numbering: the header row is the row the header was found on, data rows follow it), so a bad
cell in a real database is found at once.
"""

from __future__ import annotations

import functools
import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from mer_keras.errors import DataError, MissingFileError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")

_NUMBER = re.compile(r"(\d+)(?!.*\d)")  # the last run of digits in a file name


def find_sheet(root: Path, pattern: str) -> Path:
    """The one file under ``root`` (searched recursively) matching the glob ``pattern``.

    Raises:
        MissingFileError: no root, or none found (names the root and the pattern).
        DataError: several found (lists them).
    """
    if not root.is_dir():
        raise MissingFileError(f"database root {root} does not exist or is not a folder")
    hits = []
    # The sheet sits at the root (or one level down) in every release: look there before walking
    # the whole tree, which can hold millions of frame files.
    for candidates in (lambda: root.glob(pattern), lambda: root.glob(f"*/{pattern}"), lambda: root.rglob(pattern)):
        hits = sorted(p for p in candidates() if not p.name.startswith("~$"))
        if hits:
            break
    if not hits:
        raise MissingFileError(f"no coding sheet matching {pattern!r} under {root}")
    if len(hits) > 1:
        raise DataError(f"several coding sheets match {pattern!r} under {root}: {[str(h) for h in hits]}")
    return hits[0]


def read_sheet(path: Path, required: Sequence[str]) -> tuple[pd.DataFrame, int]:
    """Read an .xlsx/.xls/.csv coding sheet whose header row may not be the first.

    The header is the first row (among the first 40) holding every name in ``required``.

    Returns:
        (frame with the header applied and blank rows dropped, Excel row number of the header).
        Each data row keeps its Excel row number in the column ``_row``.
    Raises:
        MissingFileError: the file does not exist.
        DataError: the file is not a readable sheet (empty, truncated, not a spreadsheet, not
            text), or no row holds all required columns (names the sheet and the missing ones).
    """
    sheet = None  # the name of the workbook's first sheet, for messages
    try:
        if path.is_dir():
            raise DataError(f"{path}: not a readable coding sheet (a folder, not an .xlsx/.xls/.csv file)")
        if path.suffix.lower() == ".csv":
            raw = pd.read_csv(path, header=None, dtype=object)
        else:
            with pd.ExcelFile(path) as book:
                sheet = book.sheet_names[0]
                raw = book.parse(sheet, header=None, dtype=object)
                if raw.dropna(how="all").empty:
                    others = [name for name in book.sheet_names[1:]
                              if not book.parse(name, header=None, nrows=40).dropna(how="all").empty]
                    raise DataError(f"{path}: sheet {sheet!r}, the first of the workbook, is blank; the coding is read "
                                    "from the first sheet" + (f" (move sheet {others[0]!r}, which holds cells, first)"
                                                              if others else ""))
    except FileNotFoundError:
        raise MissingFileError(f"coding sheet {path} does not exist") from None
    except DataError:
        raise
    except Exception as exc:  # pandas, openpyxl, xlrd and zipfile raise many types for a damaged file
        raise DataError(f"{path}: not a readable coding sheet ({_sheet_reason(path, exc)})") from None
    want = {c.lower() for c in required}
    for i in range(min(40, len(raw))):
        cells = [str(v).strip() for v in raw.iloc[i].tolist()]
        if want <= {c.lower() for c in cells}:
            df = raw.iloc[i + 1:].copy()
            df.columns = [c if c and c != "nan" else f"Unnamed: {k}" for k, c in enumerate(cells)]
            df["_row"] = range(i + 2, i + 2 + len(df))
            df = df.dropna(how="all", subset=[c for c in df.columns if c != "_row"])
            return df.reset_index(drop=True), i + 1
    first = [str(v) for v in raw.iloc[0].tolist()] if len(raw) else []
    raise DataError(f"{path}: no header row with columns {list(required)}"
                    + (f" in sheet {sheet!r}" if sheet is not None else "") + f" (first row: {first})")


def _sheet_reason(path: Path, exc: BaseException) -> str:
    """Why a coding sheet did not read: a text file named like a workbook is said to be one."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        head = b""
    if path.suffix.lower() != ".csv" and head and b"\0" not in head and binary_kind(head) is None:
        import codecs

        try:
            codecs.getincrementaldecoder("utf-8")().decode(head)  # a character cut at the block's end is not an error
            return f"a text file, not an Excel workbook: name it .csv if it is a CSV table ({short_reason(exc)})"
        except UnicodeDecodeError:
            pass
    return short_reason(exc)


#: Leading bytes of binary files a table is often confused with -> what the file is.
_MAGIC = ((b"PK\x03\x04", "an Excel workbook (.xlsx) or another zip file"),
          (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Excel workbook (.xls)"),
          (b"%PDF", "a PDF document"), (b"\x1f\x8b", "a gzip-compressed file"))


def binary_kind(head: bytes) -> str | None:
    """What a file starting with ``head`` is, when it is a workbook, zip, PDF or gzip file (else None)."""
    return next((kind for magic, kind in _MAGIC if head.startswith(magic)), None)


def short_reason(exc: BaseException) -> str:
    """``Type: first line of the message`` of a reader's exception, for one-line errors; for a text
    reader given a workbook or another binary file, what the file is and what to do."""
    if isinstance(exc, UnicodeDecodeError) and isinstance(exc.object, (bytes, bytearray)):
        kind = binary_kind(bytes(exc.object[:8]))
        if kind:
            return f"{kind}, not CSV text: save it as CSV (UTF-8) first"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def column(df: pd.DataFrame, name: str):
    """The column called ``name``, matched case-insensitively and ignoring surrounding spaces."""
    for c in df.columns:
        if str(c).strip().lower() == name.lower():
            return c
    raise KeyError(name)


def parse_frame_number(value, where: str, missing=("/", "-1", "", "nan", "none")) -> int | None:
    """A frame number cell: an int, or ``None`` for the databases' "missing" codes ('/', -1).

    Raises:
        DataError: anything else that is not a whole number (names ``where``).
    """
    text = str(value).strip().lower()
    if text in missing:
        return None
    try:
        number = float(text)
    except ValueError:
        raise DataError(f"{where}: frame number {value!r} is not a number") from None
    if not math.isfinite(number) or number != int(number) or number < 0:
        raise DataError(f"{where}: frame number {value!r} is not a whole, non-negative number")
    return int(number)


def parse_aus(value) -> tuple[str, ...]:
    """FACS action units from a coding cell, in a canonical ``AU<n>`` form, in order, no repeats.

    Accepts the databases' spellings: ``"4+7"``, ``"AU4+AU7"``, ``"R12 + R15"`` (side prefixes L/R/B),
    ``"R14A"`` (intensity suffix A-E), ``"12 or 14"`` (both kept), ``"4(k)"`` (4DME key AU), commas.
    Empty, '/' or NaN gives ``()``. Tokens without a number (e.g. "?") are ignored.
    """
    text = str(value)
    if text.strip().lower() in ("", "nan", "/", "none", "-"):
        return ()
    out = []
    for token in re.split(r"[+,;/]|\bor\b|\band\b", text, flags=re.I):
        m = re.search(r"(\d+)", token)
        if m:
            au = f"AU{int(m.group(1))}"
            if au not in out:
                out.append(au)
    return tuple(out)


def numbered_frames(folder: Path, suffixes: Iterable[str] = IMAGE_SUFFIXES) -> list[tuple[int, Path]]:
    """Image files of a clip folder with their frame numbers, sorted by number (not lexically).

    The frame number is the last run of digits in the file stem (``img46.jpg`` -> 46,
    ``006_05562.jpg`` -> 5562, ``reg_img46.jpg`` -> 46). Only files that follow the folder's frame
    naming are frames: the name pattern most files share, with the number as its variable part
    (``img{n}.jpg``). Others (``img12 - Copy.jpg``, a ``img12.png`` beside the JPEG frames) are
    left out; :func:`frame_listing` names them.

    Raises:
        MissingFileError: the folder is missing. DataError: a file name has no number, two frames
            have the same number (``img12.jpg``, ``img012.jpg``), or the folder's path cannot be
            looked up (e.g. a name too long for the file system).
    """
    return frame_listing(folder, suffixes)[0]


def frame_listing(folder: Path, suffixes: Iterable[str] = IMAGE_SUFFIXES) -> tuple[list[tuple[int, Path]], list[Path]]:
    """(the frames of :func:`numbered_frames`, the image files left out because they do not follow
    the folder's frame naming). Same errors as :func:`numbered_frames`."""
    try:
        exists = folder.is_dir()
    except OSError as exc:  # e.g. a name too long for the file system, made from a sheet's cell
        raise DataError(f"frame folder {folder}: {exc.strerror or exc}") from None
    if not exists:
        raise MissingFileError(f"frame folder {folder} does not exist")
    suffixes = tuple(suffixes)
    # Cached by the folder's modification time: several expressions coded in one long video
    # (CAS(ME)^2, CAS(ME)^3) share a folder that is then listed once.
    frames, left_out = _scan(str(folder), os.stat(folder).st_mtime_ns, suffixes)
    return list(frames), list(left_out)


def frame_pattern(name: str) -> str:
    """A frame file's naming with its number as ``{n}``: ``img46.JPG`` -> ``img{n}.jpg``
    (the last run of digits of the stem; the suffix lower-cased)."""
    stem, suffix = os.path.splitext(name)
    m = _NUMBER.search(stem)
    return f"{stem[:m.start()]}{{n}}{stem[m.end():]}{suffix.lower()}" if m else name


@functools.lru_cache(maxsize=512)
def _scan(folder_name: str, mtime_ns: int, suffixes: tuple[str, ...]):
    folder = Path(folder_name)
    files = []
    for entry in os.scandir(folder):
        name = entry.name
        try:
            is_file = entry.is_file()
        except OSError as exc:  # a loop of symbolic links named like a frame
            raise DataError(f"frame file {folder / name}: {exc.strerror or exc} (a loop of symbolic links?)") from None
        if is_file and os.path.splitext(name)[1].lower() in suffixes:
            m = _NUMBER.search(os.path.splitext(name)[0])
            if not m:
                raise DataError(f"frame file {folder / name} has no frame number in its name")
            files.append((int(m.group(1)), folder / name, frame_pattern(name)))
    patterns = Counter(p for _, _, p in files)
    # the frame naming: the pattern most files follow (ties: the one whose first number is smallest)
    naming = min(patterns, key=lambda p: (-patterns[p], min(n for n, _, q in files if q == p), p)) if files else None
    frames = sorted((n, path) for n, path, p in files if p == naming)
    left_out = tuple(sorted(path for _, path, p in files if p != naming))
    for (a, pa), (b, pb) in zip(frames, frames[1:]):
        if a == b:
            raise DataError(f"frame files {pa} and {pb} both have frame number {a}: one of them is not a frame of "
                            "this clip (remove it)")
    return tuple(frames), left_out
