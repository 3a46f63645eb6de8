"""The one record type every database loader yields."""

from __future__ import annotations

from dataclasses import dataclass, field


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

    def __post_init__(self) -> None:
        where = f" ({self.source})" if self.source else ""
        n = len(self.frame_paths)
        if n < 2:
            raise ValueError(f"clip {self.subject}/{self.clip_id} has {n} frame(s); at least 2 are needed{where}")
        if not 0 <= self.onset <= self.offset < n:
            raise ValueError(f"onset {self.onset} / offset {self.offset} outside the {n} frames of clip "
                             f"{self.subject}/{self.clip_id} or onset > offset{where}")
        if not self.onset <= self.apex <= self.offset:
            raise ValueError(f"apex {self.apex} is outside onset..offset {self.onset}..{self.offset} in clip "
                             f"{self.subject}/{self.clip_id}{where}")

    @property
    def key(self) -> str:
        """``database/subject/clip_id``, unique across databases."""
        return f"{self.database}/{self.subject}/{self.clip_id}"
