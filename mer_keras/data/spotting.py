"""Long videos with spotting annotations: the synthetic long videos, CAS(ME)^2 and SAMM long videos (SAMM-LV).

Every database gives :class:`SpotVideo` records: the frame files of one long video in order, its
frame rate, and its annotated expressions as :class:`~mer_keras.runtime.intervals.Interval`
(0-based indices into the frame list, type ``micro`` or ``macro``, the emotion as label).

* ``synthetic``: :mod:`mer_keras.data.synthetic.long` (rendered on first use, cached).
* ``casme_sq``: CAS(ME)^2 (Qu et al., IEEE TAC 2018), 30 fps; ``root`` holds
  ``CAS(ME)^2code_final*.xlsx`` and ``rawpic/s15/15_0101disgustingteeth/img1.jpg ...``; every coded
  row (micro- and macro-expressions; see :mod:`mer_keras.data.casme_sq` for the sheet) is read.
* ``samm``: SAMM long videos (Yap et al., "SAMM Long Videos: A Spontaneous Facial Micro- and
  Macro-Expressions Dataset", FG 2020), 200 fps; ``root`` holds ``SAMM_LongVideos_V*_Release.xlsx``
  (title rows, then the header Subject | Filename | Inducement Code | Onset | Apex | Offset |
  Duration | Type | Action Units | Notes; Filename ``006_1_2`` = video ``006_1``, movement 2; Type
  ``Macro`` or ``Micro - 1/2``) and ``SAMM_longvideos/006_1/006_1_0001.jpg ...``.

Frame numbers in the sheets are those of the file names (the last number in the name); a number
with no file is an error naming the sheet row. An apex coded as missing (0, -1, "/") is the
midpoint of onset..offset; a row without onset or offset is skipped and counted (strict: error).
The sheet layouts follow the databases' public descriptions and the MEGC loaders; check the counts
of a first run against your copy.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mer_keras.errors import DataError, MissingFileError, OptionError
from mer_keras.names import SPOT_DATASETS
from mer_keras.runtime.intervals import Interval


@dataclass(frozen=True)
class SpotVideo:
    """One long video and its annotated expressions.

    Attributes:
        name: the video's id (unique within its database). subject: the subject's id.
        frames: frame image paths in temporal order. fps: frames per second.
        truth: annotated expressions, 0-based indices into ``frames``.
        database: the database's name. skipped: annotation rows left out (no onset or offset).
        frame_numbers: each frame's number as in its file name (``img46.jpg`` -> 46).
    """

    name: str
    subject: str
    frames: tuple[str, ...]
    fps: float
    truth: tuple[Interval, ...]
    database: str
    skipped: int = 0
    frame_numbers: tuple[int, ...] = ()

    def number(self, index: int) -> int:
        """The frame number of frame ``index`` (0-based), as in the file names."""
        return self.frame_numbers[index] if self.frame_numbers else index + 1

    def place(self, it: Interval) -> dict:
        """Where an interval of this video is: its type, onset / apex / offset frame numbers, onset and
        offset in seconds, and its score (the columns of ``intervals.csv`` and ``predict --spot``)."""
        return {"type": it.type, "onset": self.number(it.onset), "apex": self.number(it.apex),
                "offset": self.number(it.offset), "onset_s": round(it.onset / self.fps, 3),
                "offset_s": round(it.offset / self.fps, 3), "score": it.score}


def list_frames(folder: Path) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The frame images of a folder in the order of their numbers, and those numbers
    (:func:`mer_keras.data.sheets.numbered_frames`).

    Raises:
        MissingFileError: no such folder, or no frame image in it. DataError: a frame file without
            a number in its name.
    """
    from mer_keras.data.sheets import numbered_frames

    numbered = numbered_frames(folder)
    if not numbered:
        raise MissingFileError(f"{folder}: no frame images there")
    return tuple(str(p) for _, p in numbered), tuple(n for n, _ in numbered)


def _interval(index: dict[int, int], onset, apex, offset, kind: str, label: str, where: str) -> Interval:
    """An annotated row as an Interval of frame indices (apex missing: the midpoint)."""
    def number(value, name, missing_ok=False):
        try:
            n = int(float(value))
        except (TypeError, ValueError):
            n = None
        if n is None or n <= 0:
            if missing_ok:
                return None
            raise DataError(f"{where}: {name} frame {value!r} is not a frame number")
        if n not in index:
            raise DataError(f"{where}: {name} frame {n} has no frame file in the video folder")
        return index[n]

    on, off = number(onset, "onset"), number(offset, "offset")
    ap = number(apex, "apex", missing_ok=True)
    ap = (on + off) // 2 if ap is None else ap
    if not on <= ap <= off:
        raise DataError(f"{where}: onset {onset}, apex {apex}, offset {offset} are not in order")
    return Interval(on, ap, off, kind, 0.0, label)


def load_synthetic_long(cfg=None, faces=None, cache_dir=None, progress=None) -> list[SpotVideo]:
    """The long synthetic videos of ``cfg`` (a :class:`~mer_keras.data.synthetic.long.LongVideoConfig`)."""
    import pandas as pd

    from mer_keras.data.synthetic.long import long_videos

    root = long_videos(cfg, faces, cache_dir, progress)
    meta = json.loads((root / "videos.json").read_text())
    sheet = pd.read_csv(root / "spotting.csv", dtype={"Video": str})
    out = []
    for name, info in meta["videos"].items():
        frames = [root / name / f"img{i}.jpg" for i in range(1, int(info["frames"]) + 1)]
        index = {i: i - 1 for i in range(1, len(frames) + 1)}
        truth = [_interval(index, r.Onset, r.Apex, r.Offset, r.Type, r.Emotion, f"{root / 'spotting.csv'}:{i + 2}")
                 for i, r in zip(sheet.index, sheet.itertuples()) if r.Video == name]
        out.append(SpotVideo(name, info["subject"], tuple(map(str, frames)), float(meta["fps"]),
                             tuple(sorted(truth, key=lambda t: t.onset)), "synthetic"))
    return out


def _collect(rows, root: Path, fps: float, database: str, strict: bool) -> list[SpotVideo]:
    """Group (video folder, subject, where, onset, apex, offset, type, label) rows into videos."""
    by_video: dict[Path, dict] = {}
    for folder, subject, where, onset, apex, offset, kind, label in rows:
        entry = by_video.setdefault(folder, {"subject": subject, "rows": [], "skipped": 0})
        if any(str(v).strip().lower() in ("", "nan", "none", "/", "-", "-1", "0") for v in (onset, offset)):
            if strict:
                raise DataError(f"{where}: onset {onset!r} or offset {offset!r} is not coded")
            entry["skipped"] += 1
            continue
        entry["rows"].append((where, onset, apex, offset, kind, label))
    out = []
    for folder, entry in sorted(by_video.items()):
        frames, numbers = list_frames(folder)
        index = {n: i for i, n in enumerate(numbers)}
        truth = [_interval(index, on, ap, off, kind, label, where) for where, on, ap, off, kind, label in entry["rows"]]
        out.append(SpotVideo(str(folder.relative_to(root)), entry["subject"], frames, fps,
                             tuple(sorted(truth, key=lambda t: t.onset)), database, entry["skipped"], numbers))
    return out


def _expression_type(value, where: str) -> str:
    text = str(value).strip().lower()
    if "micro" in text:
        return "micro"
    if "macro" in text:
        return "macro"
    raise DataError(f"{where}: expression type {value!r} is neither micro nor macro")


def load_casme_sq_long(root, strict: bool = False) -> list[SpotVideo]:
    """CAS(ME)^2 long videos (``rawpic``) with every coded micro- and macro-expression.

    Raises:
        MissingFileError: no root, sheet or ``rawpic`` folder, or a video folder a row names.
        DataError: an unreadable sheet, a row whose subject, video, type or frames are bad (named).
    """
    from mer_keras.data.casme_sq import FPS, read_code_sheet

    sheet, frame_root, subjects, videos, codes = read_code_sheet(root)
    rows = []
    for i, row in enumerate(codes.itertuples(index=False), start=1):
        cells = list(row) + [None] * 9
        where = f"{sheet}:{i}"
        try:
            folder, prefix = subjects[int(float(cells[0]))]
        except (KeyError, TypeError, ValueError, OverflowError):
            if strict:
                raise DataError(f"{where}: subject id {cells[0]!r} is not in 'naming rule1'") from None
            continue  # a title or empty row
        video = str(cells[1]).strip().split("_")[0].lower()
        if video not in videos:
            raise DataError(f"{where}: video {video!r} is not in 'naming rule2'")
        matches = sorted((frame_root / folder).glob(f"{prefix}_{videos[video]}*"))
        if not matches:
            raise MissingFileError(f"{where}: no folder {frame_root / folder}/{prefix}_{videos[video]}*")
        rows.append((matches[0], folder, where, cells[2], cells[3], cells[4], _expression_type(cells[7], where),
                     str(cells[6]).strip().lower()))
    return _collect(rows, frame_root, FPS, "casme_sq", strict)


def load_samm_long(root, strict: bool = False) -> list[SpotVideo]:
    """SAMM long videos with every coded micro- and macro-movement.

    Raises:
        MissingFileError: no root, sheet, ``SAMM_longvideos`` folder or video folder.
        DataError: an unreadable sheet, no header row, a bad row (named).
    """
    import pandas as pd

    from mer_keras.data.database import resolve_root
    from mer_keras.data.sheets import find_sheet, short_reason

    root = resolve_root(root, "SAMM")
    sheet = find_sheet(root, "SAMM_LongVideos*.xls*")
    frame_root = root / "SAMM_longvideos"
    if not frame_root.is_dir():
        raise MissingFileError(f"SAMM long-video frame folder {frame_root} does not exist")
    try:
        raw = pd.read_excel(sheet, header=None, dtype=object)
    except Exception as exc:
        raise DataError(f"{sheet}: not a readable coding sheet ({short_reason(exc)})") from None
    header = next((i for i, r in raw.iterrows()
                   if {"onset", "offset", "type", "filename"} <= {str(c).strip().lower() for c in r}), None)
    if header is None:
        raise DataError(f"{sheet}: no header row with Filename, Onset, Offset and Type")
    cols = {str(c).strip().lower(): k for k, c in enumerate(raw.iloc[header])}
    rows = []
    for i in range(header + 1, len(raw)):
        r = raw.iloc[i]
        where = f"{sheet}:{i + 1}"
        name = str(r.iloc[cols["filename"]]).strip()
        if name in ("", "nan"):
            continue
        parts = name.split("_")
        if len(parts) < 3:
            raise DataError(f"{where}: Filename {name!r} is not <subject>_<video>_<movement>")
        video = "_".join(parts[:2])
        rows.append((frame_root / video, parts[0], where, r.iloc[cols["onset"]],
                     r.iloc[cols["apex"]] if "apex" in cols else None, r.iloc[cols["offset"]],
                     _expression_type(r.iloc[cols["type"]], where), ""))
    return _collect(rows, frame_root, 200.0, "samm", strict)


@dataclass(frozen=True)
class SpotDatasetSpec:
    """One row of the spotting table: a database of long videos with spotting annotations.

    Attributes:
        name: the ``mer-keras spot --data`` value (one of :data:`~mer_keras.names.SPOT_DATASETS`).
        load: ``load(root, *, strict, synthetic, faces, cache_dir, progress) -> list[SpotVideo]``.
        generated: rendered by the package (no root; takes a
            :class:`~mer_keras.data.synthetic.long.LongVideoConfig`), not read from a folder.
    """

    name: str
    load: Callable[..., list[SpotVideo]]
    generated: bool = False


def _load_synthetic_long(root, *, synthetic=None, faces=None, cache_dir=None, progress=None, **_) -> list[SpotVideo]:
    if root is not None:
        raise OptionError("--root is for a database; the synthetic long videos are rendered, not read")
    return load_synthetic_long(synthetic, faces, cache_dir, progress)


#: The spotting databases, by name.
SPOT_TABLE: dict[str, SpotDatasetSpec] = {spec.name: spec for spec in (
    SpotDatasetSpec("synthetic", _load_synthetic_long, generated=True),
    SpotDatasetSpec("casme_sq", lambda root, *, strict=False, **_: load_casme_sq_long(root, strict)),
    SpotDatasetSpec("samm", lambda root, *, strict=False, **_: load_samm_long(root, strict)),
)}
if tuple(SPOT_TABLE) != SPOT_DATASETS:
    raise RuntimeError(f"mer_keras.names.SPOT_DATASETS {SPOT_DATASETS} differs from the spotting table "
                       f"{tuple(SPOT_TABLE)}")


def spot_dataset(name: str) -> SpotDatasetSpec:
    """The row of spotting database ``name``.

    Raises:
        OptionError: an unknown name (the message lists the known ones).
    """
    if name not in SPOT_TABLE:
        raise OptionError(f"unknown spotting dataset {name!r}; expected one of {SPOT_DATASETS}")
    return SPOT_TABLE[name]


def load_spotting(name: str, root=None, *, synthetic=None, faces=None, cache_dir=None, strict: bool = False,
                  progress=None) -> list[SpotVideo]:
    """The long videos of a spotting database (its :data:`SPOT_TABLE` row's loader).

    Raises:
        OptionError: an unknown name, or a root given for ``synthetic``. MissingFileError,
            DataError: see the database's loader.
    """
    return spot_dataset(name).load(root, strict=strict, synthetic=synthetic, faces=faces, cache_dir=cache_dir,
                                   progress=progress)
