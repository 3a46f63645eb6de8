"""What every database loader shares: the root, the record builder, and bad-clip reporting."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from mer_keras.data.records import Dataset, Sample
from mer_keras.data.sheets import frame_listing, frame_pattern
from mer_keras.errors import DataError, MerKerasError, MissingFileError, OptionError
from mer_keras.names import APEX_POLICIES  # noqa: F401  (re-exported)


def describe(where: str, why: str) -> str:
    """One line for a skipped clip: ``where: why`` (without repeating ``where`` when ``why`` has it)."""
    return why if why.startswith(where) else f"{where}: {why}"


def resolve_root(root: str | os.PathLike | None, default_dirname: str) -> Path:
    """The database folder: ``root``, or ``$MER_DATA_ROOT/<default_dirname>``.

    Raises:
        MissingFileError: neither is given, or the folder does not exist.
    """
    if root is None:
        base = os.environ.get("MER_DATA_ROOT")
        if not base:
            raise MissingFileError(f"no database root: pass --root or set MER_DATA_ROOT (expects "
                                   f"$MER_DATA_ROOT/{default_dirname})")
        root = Path(base) / default_dirname
    root = Path(root)
    if not root.is_dir():
        raise MissingFileError(f"database root {root} does not exist or is not a folder")
    return root


def make_sample(database: str, subject: str, clip_id: str, folder: Path, onset: int | None, apex: int | None,
                offset: int | None, aus: tuple[str, ...], emotion: str, fps: float, where: str,
                apex_policy: str = "midpoint") -> Sample:
    """Build a :class:`Sample` from a clip folder and the sheet's frame numbers.

    Args:
        onset, apex, offset: the sheet's frame numbers (as in the file names); ``None`` onset or
            offset means the first or last file; ``None`` apex is filled by ``apex_policy``:
            "midpoint" (the file halfway between onset and offset) or "spot" (the frame of largest
            motion against onset, :func:`mer_keras.preprocess.frames.spot_apex`).
        where: sheet:row (or folder) for error messages.
    Files beside the frames that do not follow their naming (:func:`mer_keras.data.sheets.frame_listing`)
    are left out and named in the sample's ``notes`` (:func:`mer_keras.data.checks.check_records`
    turns them into warnings).

    Raises:
        OptionError: unknown ``apex_policy``. MissingFileError: missing folder. DataError: too
        few frames, a frame number with no file, two frames with one number, onset > offset, apex
        outside onset..offset (each message names ``where``).
    """
    if apex_policy not in APEX_POLICIES:
        raise OptionError(f"unknown apex policy {apex_policy!r}; expected one of {APEX_POLICIES}")
    try:
        frames, left_out = frame_listing(folder)
    except FileNotFoundError:
        raise MissingFileError(f"{where}: frame folder {folder} does not exist") from None
    if len(frames) < 2:
        raise DataError(f"{where}: {folder} holds {len(frames)} frame(s); at least 2 are needed")
    numbers = [n for n, _ in frames]
    index = {n: i for i, n in enumerate(numbers)}

    def locate(number: int | None, name: str, default: int) -> int:
        if number is None:
            return default
        if number not in index:
            raise DataError(f"{where}: {name} frame {number} has no file in {folder} "
                            f"(frames {numbers[0]}..{numbers[-1]})")
        return index[number]

    i_on = locate(onset, "onset", 0)
    i_off = locate(offset, "offset", len(frames) - 1)
    if i_on > i_off:
        raise DataError(f"{where}: onset {onset} is after offset {offset}")
    if apex is None and apex_policy == "spot":
        from mer_keras.preprocess.frames import spot_apex

        i_apex = i_on + spot_apex([p for _, p in frames[i_on:i_off + 1]])
    else:
        i_apex = locate(apex, "apex", (i_on + i_off) // 2)
    if not i_on <= i_apex <= i_off:
        raise DataError(f"{where}: apex {apex} is outside onset..offset {onset}..{offset}")
    notes = ()
    if left_out:  # a copy or a converted file beside the frames: not a frame of the clip
        pattern = frame_pattern(Path(frames[0][1]).name) if frames else "?"
        shown = ", ".join(p.name for p in left_out[:5]) + (f" and {len(left_out) - 5} more" * (len(left_out) > 5))
        notes = (f"{folder}: {len(left_out)} file(s) that do not follow the frame naming {pattern} left out of the "
                 f"clip's frames: {shown}",)
    return Sample(subject=subject, clip_id=clip_id, frame_paths=tuple(str(p) for _, p in frames),
                  onset=i_on, apex=i_apex, offset=i_off, aus=aus, emotion=emotion, label=emotion,
                  database=database, fps=fps, source=where, frame_numbers=tuple(numbers), notes=notes)


def attempt(where: str, build, strict: bool, skipped: list[tuple[str, str]]):
    """Run ``build()`` and return its value, or record ``(where, why)`` in ``skipped`` and return None.

    Raises:
        MerKerasError (DataError, MissingFileError...), NotADirectoryError, PermissionError: with
            ``strict``, the error of ``build``; its message always names ``where`` (prefixed when
            the error did not, e.g. an unreadable folder: then a MissingFileError or DataError).
            Other errors (a full disk, a builtin ValueError from a bug...) are not the clip's
            fault and always propagate.
    """
    try:
        return build()
    except (MerKerasError, FileNotFoundError, NotADirectoryError, PermissionError) as exc:
        why = str(exc)
        if strict:
            if where in why:
                raise
            raise (MissingFileError if isinstance(exc, FileNotFoundError) else DataError)(f"{where}: {why}") from None
        skipped.append((where, why))
        return None


def collect(result: Dataset, where: str, build, strict: bool) -> None:
    """:func:`attempt` for one clip: append its :class:`Sample` to ``result``, or record it as skipped."""
    sample = attempt(where, build, strict, result.skipped)
    if sample is not None:
        result.samples.append(sample)


@dataclass(frozen=True)
class SheetSpec:
    """How one database's coding sheet and frame folders are laid out.

    Attributes:
        name: database name in records (``Sample.database``).
        fps: frame rate in frames per second.
        sheet_pattern: glob of the coding sheet under the root.
        columns: role -> sheet column name, for roles subject, clip, onset, apex, offset, aus, emotion.
        frame_dir: template of a clip's frame folder relative to the frame root, with fields
            ``{subject}`` (formatted), ``{clip}`` and ``{emotion}`` (as written in the sheet).
        subject_format: format of a numeric Subject cell (e.g. ``"sub{:02d}"``); non-numeric cells
            are kept as written.
        emotions: accepted emotions after lower-casing and ``aliases`` (``None``: any).
        aliases: emotion spellings mapped to the canonical one (e.g. ``{"others": "other"}``).
    """

    name: str
    fps: float
    sheet_pattern: str
    columns: dict
    frame_dir: str
    subject_format: str = "{}"
    emotions: tuple | None = None
    aliases: dict = field(default_factory=dict)


def load_sheet_database(spec: SheetSpec, root: Path, frame_root: Path, strict: bool = False,
                        apex_policy: str = "midpoint", sheet: Path | None = None) -> Dataset:
    """Records of a database described by a :class:`SheetSpec`.

    Clips whose (subject, clip) repeats in the sheet (several expressions in one video) get the
    onset frame appended to their clip id so that every record is distinct.

    Raises:
        MissingFileError: no sheet. DataError: no header row with the spec's columns; with
        ``strict``, the first bad row (names sheet and row).
    """
    from mer_keras.data.sheets import column, find_sheet, parse_aus, parse_frame_number, read_sheet

    sheet = sheet or find_sheet(root, spec.sheet_pattern)
    df, _ = read_sheet(sheet, list(spec.columns.values()))
    cols = {role: column(df, name) for role, name in spec.columns.items()}
    result, seen = Dataset(spec.name), set()
    for r in df.to_dict("records"):
        where = f"{sheet}:{r['_row']}"

        def build(r=r, where=where):
            cell = str(r[cols["subject"]]).strip()
            number = cell[:-2] if cell.endswith(".0") else cell
            subject = spec.subject_format.format(int(number)) if number.isdecimal() else cell
            if not subject or subject == "nan":
                raise DataError(f"{where}: empty Subject")
            clip = str(r[cols["clip"]]).strip()
            written = str(r[cols["emotion"]]).strip()
            emotion = spec.aliases.get(written.lower(), written.lower())
            if spec.emotions is not None and emotion not in spec.emotions:
                raise DataError(f"{where}: unknown emotion {written!r}; expected one of {spec.emotions}")
            onset = parse_frame_number(r[cols["onset"]], where)
            folder = frame_root / spec.frame_dir.format(subject=subject, clip=clip, emotion=written)
            clip_id = clip if (subject, clip) not in seen else f"{clip}_{onset}"
            sample = make_sample(spec.name, subject, clip_id, folder, onset, parse_frame_number(r[cols["apex"]], where),
                                 parse_frame_number(r[cols["offset"]], where),
                                 parse_aus(r[cols["aus"]]) if "aus" in cols else (), emotion, spec.fps, where,
                                 apex_policy)
            seen.add((subject, clip))
            return sample

        collect(result, where, build, strict)
    return result
