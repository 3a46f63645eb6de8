"""The spotter's parameters (:class:`SpotConfig`), their checks, and why a video gave no interval.

Each parameter's role in the method is described in :mod:`mer_keras.runtime.spotting`'s docstring;
``mer-keras spot``, ``tools/fit_spotter.py`` and the ``edge/`` runner build one and pass it to
:class:`~mer_keras.runtime.spotting.Spotter`. TF-free: numpy and :mod:`mer_keras.runtime.spot_stage`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from mer_keras.runtime.spot_stage import load_stage

#: How a candidate is kept: the analytic rules, or the learned second stage (:mod:`~mer_keras.runtime.spot_stage`).
METHODS = ("analytic", "learned")


@dataclass(frozen=True)
class SpotConfig:
    """Parameters of the spotter (units as stated; their roles: :mod:`mer_keras.runtime.spotting`).

    Attributes:
        size: side of the aligned grey face, px. grid: cells per side of the motion grid.
        micro_k, macro_k: reference distance k of the two scales, s.
        max_micro: longest micro-expression, s (MEGC: 0.5). min_duration: shortest interval kept, s.
        top: fraction of face cells averaged into the signal.
        smooth: moving-average width of the signal, s.
        z: threshold in robust standard deviations (1.4826 MAD) above the median.
        edge: onset and offset where the signal is back to this fraction of the peak height.
        blink_ratio: a candidate whose eye regions change (grey levels) this many times more than the
            face on average is a blink.
        min_snr: a candidate's peak must be this many times the motion near its neutral references.
        history: seconds of signal the threshold is computed over (a trailing window).
        landmark_every: seconds between face-mesh runs.
        method: ``"analytic"`` keeps a candidate by ``min_snr`` and ``min_duration``; ``"learned"``
            by the logistic regression of :mod:`mer_keras.runtime.spot_stage` (the packaged one,
            or ``learned_model``, a JSON file written by ``tools/fit_spotter.py``).
    Raises:
        ValueError: a value out of range, or a second stage that cannot be read (its file named).
    """

    size: int = 128
    grid: int = 32
    micro_k: float = 0.3
    macro_k: float = 1.0
    max_micro: float = 0.5
    min_duration: float = 0.08
    top: float = 0.05
    smooth: float = 0.04
    z: float = 4.0
    edge: float = 0.2
    history: float = 60.0
    landmark_every: float = 0.1
    blink_ratio: float = 4.5
    min_snr: float = 5.0
    method: str = "analytic"
    learned_model: str | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"spotting method {self.method!r}: expected one of {', '.join(METHODS)}")
        if self.learned_model is not None and self.method != "learned":
            raise ValueError("a learned_model is for method 'learned'")
        if self.method == "learned":
            load_stage(self.learned_model)  # a bad second stage is named here, before any frame is read
        for name in ("size", "grid"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 < value <= 4096:
                raise ValueError(f"spotting parameter {name} must be a whole number from 1 to 4096, got {value!r}")
        if self.size < 32 or self.grid < 4 or self.size % self.grid:
            raise ValueError(f"spotting needs size >= 32 divisible by grid >= 4, got size {self.size}, "
                             f"grid {self.grid}")
        for name in ("micro_k", "macro_k", "max_micro", "smooth", "z", "history", "landmark_every", "blink_ratio",
                     "min_snr"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)
                    and value > 0):
                raise ValueError(f"spotting parameter {name} must be a finite number > 0, got {value!r}")
        value = self.min_duration
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)
                and value >= 0):
            raise ValueError(f"spotting parameter min_duration must be a finite number >= 0, got {value!r}")
        if not 0 < self.top <= 1 or not 0 < self.edge < 1:
            raise ValueError(f"spotting top must be in (0, 1] and edge in (0, 1), got {self.top}, {self.edge}")
        if self.macro_k <= self.micro_k:
            raise ValueError(f"macro_k ({self.macro_k} s) must be longer than micro_k ({self.micro_k} s)")

    def to_dict(self) -> dict:
        """Every parameter by name (what ``mer-keras spot`` records in its setup and results.json)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> SpotConfig:
        """A config from recorded values (unknown keys ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    def frames(self, seconds: float, fps: float) -> int:
        """``seconds`` at ``fps`` as a whole number of frames, at least 1."""
        return max(1, int(round(seconds * fps)))

    def shortest_video(self) -> float:
        """Seconds a video needs for anything to be spotted: ``macro_k`` of context before and after
        an event (the macro scale compares frames ``macro_k`` apart) and a neutral second for the
        threshold, which is relative to the video's own motion."""
        return 2 * self.macro_k + 1.0

    def why_nothing(self, frames: int, fps: float, no_face: int) -> str:
        """One line saying why a video gave no interval, and what to try.

        Args:
            frames: frames read. fps: their rate. no_face: frames without a face (or without the
                signal's context at the video's ends).
        """
        seconds = frames / fps if fps else 0.0
        if seconds < self.shortest_video():
            return (f"nothing spotted: the video is {seconds:.2f} s ({frames} frames at {fps:g} fps); spotting needs "
                    f"at least {self.shortest_video():g} s ({self.macro_k:g} s of context on each side of an "
                    "expression and neutral stretches for its threshold): give a longer video, or classify it as "
                    "one clip (predict without --spot, edge.run --mode windows)")
        if no_face >= frames - 2 * self.frames(self.macro_k, fps):
            return (f"nothing spotted: no face was found in {no_face} of the {frames} frames: check that one face "
                    "is visible, frontal and lit")
        return ("nothing spotted: no facial motion rose above the spotting threshold (the video's median motion + "
                f"{self.z:g} MADs, and {self.min_snr:g} x the motion near each candidate's neutral references): "
                "the face may be still; `mer-keras spot --min-snr 3` finds weaker motion (and more false intervals)")
