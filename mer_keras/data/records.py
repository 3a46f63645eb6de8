"""The one record type every database loader yields."""

from __future__ import annotations

from dataclasses import dataclass, field

from mer_keras.errors import DataError


@dataclass(frozen=True)
class Sample:
    """One micro-expression clip, whatever database it came from.

    Attributes:
        subject: subject id as a string (e.g. ``"sub01"``, ``"006"``).
        clip_id: clip name unique within the subject (e.g. ``"EP02_01f"``).
        frame_paths: every frame file of the clip in temporal order (sorted numerically).
        onset, apex, offset: indices into ``frame_paths`` (0-based), onset <= apex <= offset.
        aus: FACS action units as written by the coders, e.g. ``("AU4", "AU7")``.
        emotion: emotion as written in the coding sheet.
        label: class name under the active protocol (e.g. ``"negative"``).
        database: source database name (``"synthetic"``, ``"casme2"``, ...).
        fps: recording frame rate in frames per second.
        source: where the record came from (sheet path and row) for error messages.
        frame_numbers: the databases' own frame number of each file (``img46.jpg`` -> 46), when
            known; ``frame_numbers[onset]`` is the coding sheet's onset frame.
        notes: what was decided about the clip's files without stopping (files left out of its
            frames), for the dataset's warnings.
    """

    subject: str
    clip_id: str
    frame_paths: tuple[str, ...] = field(repr=False)
    onset: int
    apex: int
    offset: int
    aus: tuple[str, ...]
    emotion: str
    label: str
    database: str
    fps: float
    source: str = field(default="", compare=False)
    frame_numbers: tuple[int, ...] = field(default=(), repr=False, compare=False)
    notes: tuple[str, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        where = f" ({self.source})" if self.source else ""
        n = len(self.frame_paths)
        if n < 2:
            raise DataError(f"clip {self.subject}/{self.clip_id} has {n} frame(s); at least 2 are needed{where}")
        if not 0 <= self.onset <= self.offset < n:
            raise DataError(f"onset {self.onset} / offset {self.offset} outside the {n} frames of clip "
                            f"{self.subject}/{self.clip_id} or onset > offset{where}")
        if not self.onset <= self.apex <= self.offset:
            raise DataError(f"apex {self.apex} is outside onset..offset {self.onset}..{self.offset} in clip "
                            f"{self.subject}/{self.clip_id}{where}")

    @property
    def key(self) -> str:
        """``database/subject/clip_id``, unique across databases."""
        return f"{self.database}/{self.subject}/{self.clip_id}"


@dataclass
class Dataset:
    """The one loaded-dataset type: records ready for a protocol, whichever loader made them.

    A database loader fills ``samples`` and ``skipped``; :func:`mer_keras.data.datasets.load_dataset`
    adds the protocol's ``classes`` (and per-database ``counts`` for the composite).

    Attributes:
        name: dataset name (``"synthetic"``, ``"casme2"``, ``"composite"``, ``"manifest"``, ...).
        classes: class names in index order (empty until a label set is applied).
        samples: clip records (frames, onset/apex/offset), ``label`` one of ``classes``.
        images: precomputed-input records (:class:`mer_keras.data.manifest.ImageRecord`, manifest
            ``path`` rows), after the clips in every per-record list.
        skipped: (where, why) of every record left out, e.g. ``("CASME2-coding.xlsx:12", "no frames")``.
        counts: per-database counts ({db: {"samples", "subjects", <class>: n}}) of a composite.
        test_databases: databases whose records are the test set (cross-database protocol).
        root: where the records were read from (a folder or manifest), when one place.
        warnings: what was decided about the data without stopping (label spellings unified,
            duplicates kept once; :mod:`mer_keras.data.checks`), for the console and results.json.
    """

    name: str = ""
    classes: list[str] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    images: list = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    counts: dict = field(default_factory=dict)
    test_databases: tuple[str, ...] = ()
    root: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def rows(self) -> list[dict]:
        """subject, clip, database, label of every record, clips first, in input order."""
        from pathlib import Path

        return ([{"subject": s.subject, "clip": s.clip_id, "database": s.database, "label": s.label}
                 for s in self.samples]
                + [{"subject": r.subject, "clip": Path(r.path).name, "database": r.dataset, "label": r.label}
                   for r in self.images])

    @property
    def aus(self) -> list[tuple[str, ...]]:
        """Per record its AUs: the coding sheet's for clips, none for precomputed images."""
        return [s.aus for s in self.samples] + [() for _ in self.images]

    @property
    def keys(self) -> list[str]:
        """``database/subject/clip`` of every record (the fold files' ``test_keys``)."""
        return [f"{r['database']}/{r['subject']}/{r['clip']}" for r in self.rows]

    @property
    def subjects(self) -> set[str]:
        """Distinct subjects of clips and images."""
        return {s.subject for s in self.samples} | {i.subject for i in self.images}
