"""What the synthetic generator makes: its version, classes, class frequencies and parameters."""

from __future__ import annotations

import math
from dataclasses import dataclass

from mer_keras.errors import OptionError
from mer_keras.names import EXPRESSIONS  # noqa: F401  (re-exported)

#: Largest seed: NumPy and Keras take seeds in 0..2**32 - 1.
MAX_SEED = 2**32 - 1
#: Largest synthetic set: beyond it a count is a typo that would render for days and fill the disk.
MAX_SUBJECTS = 1_000
MAX_CLIPS = 10_000


def check_whole(what: str, name: str, value, lo: int, hi: int) -> None:
    """OptionError unless ``value`` is a whole number (not a bool, not a float) in ``lo..hi``."""
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise OptionError(f"{what}: {name} {value!r}: expected a whole number from {lo} to {hi}")


def check_number(what: str, name: str, value, lo: float | None = None, hi: float | None = None,
                 above: float | None = None) -> None:
    """OptionError unless ``value`` is a finite number (not a bool) within the bounds given."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and \
        (lo is None or value >= lo) and (hi is None or value <= hi) and (above is None or value > above)
    if not ok:
        bounds = [f"above {above:g}"] if above is not None else []
        bounds += [f"at least {lo:g}"] if lo is not None else []
        bounds += [f"at most {hi:g}"] if hi is not None else []
        raise OptionError(f"{what}: {name} {value!r}: expected a finite number" +
                          (f", {' and '.join(bounds)}" if bounds else ""))


def check_range(what: str, name: str, value, positive: bool = False, whole: bool = False) -> None:
    """OptionError unless ``value`` is a (min, max) pair of finite numbers with 0 <= min <= max
    (0 < min with ``positive``; whole numbers with ``whole``)."""
    kind = int if whole else (int, float)
    ok = isinstance(value, (tuple, list)) and len(value) == 2 and all(
        not isinstance(v, bool) and isinstance(v, kind) and math.isfinite(v) for v in value)
    if ok:
        lo, hi = value
        ok = (lo > 0 if positive else lo >= 0) and lo <= hi
    if not ok:
        raise OptionError(f"{what}: {name} {value!r}: expected (min, max) {'whole ' if whole else 'finite '}"
                          f"numbers with {'0 <' if positive else '0 <='} min <= max")

#: Version of the generator's output; part of the cache key of a generated set (``dataset_dir``).
GENERATOR_VERSION = 4  # 4: frames made with preprocess/portable.py, the same on every CPU
#: The MEGC2019 composite classes; :data:`mer_keras.facs.AU_COMBINATIONS` gives the AUs of each.
CLASSES = ("negative", "positive", "surprise")
#: Class frequencies of the generated clips, imbalanced like the real composite.
CLASS_PROBABILITIES = (0.45, 0.30, 0.25)
#: How the pseudo-subjects are filmed (``SyntheticConfig.capture``): ``single`` (every subject at
#: ``fps``, in colour) or ``databases`` (subject i as the composite database ``CAPTURE_PROFILES[i % 3]``).
CAPTURES = ("single", "databases")
#: The composite databases' cameras: (name, frames per second, grayscale). CASME II: 200 fps colour
#: (Yan et al., PLoS ONE 2014); SAMM: 200 fps grayscale (Davison et al., IEEE TAC 2018); SMIC-HS:
#: 100 fps colour (Li et al., FG 2013).
CAPTURE_PROFILES = (("casme2", 200.0, False), ("samm", 200.0, True), ("smic", 100.0, False))
#: Kinds of expression the generator renders (``SyntheticConfig.for_expression``).

#: What changes for macro-expressions: the same AUs, about four times larger at the apex (0.15-0.35
#: inter-ocular distances against 0.035-0.08) and longer (0.5-1.5 s onset to offset against
#: 0.18-0.45 s; macro-expressions last 0.5-4 s, Yan et al., J. Nonverbal Behav. 2013), for
#: pretraining on macro-expressions as micro-attention does (Wang et al., Neurocomputing 2020).
MACRO_EXPRESSION = {"amplitude": (0.15, 0.35), "duration": (0.5, 1.5)}


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of the generator (all in the units stated).

    Attributes:
        subjects: number of pseudo-subjects (>= 2; the default run uses 12).
        clips_per_subject: clips per pseudo-subject.
        seed: master seed; the output is a pure function of the config and the photos.
        fps: frame rate of the rendered clips in frames per second.
        frame_size: side of the square rendered frame in pixels (the face fills about 60 %).
        amplitude: (min, max) apex displacement of the strongest landmark, inter-ocular distances.
        duration: (min, max) onset-to-offset duration in seconds.
        rest_amplitude: (min, max) largest landmark displacement of the clip's resting face, IOD:
            a random signed mix of all AUs applied to every frame (see ``render_clip``).
        blink_probability, distractor_probability: per-clip probabilities of the nuisances.
        noise_sigma: (min, max) std of Gaussian sensor noise in 8-bit grey levels.
        jitter: std of the per-frame head-translation random walk, pixels.
        drift: maximum head drift over a clip, pixels (uniform in [-drift, drift] per axis).
        roll_jitter: std of the per-frame head-roll random walk, degrees.
        flicker: amplitude of the sinusoidal illumination flicker (relative gain).
        jpeg_quality: JPEG quality of the stored frames.
        capture: ``single`` (every subject at ``fps`` in colour) or ``databases`` (each subject
            filmed as one composite database, :data:`CAPTURE_PROFILES` in turn: its frame rate,
            and grayscale frames for SAMM's; ``fps`` is then unused).
    """

    subjects: int = 12
    clips_per_subject: int = 20
    seed: int = 0
    fps: float = 100.0
    frame_size: int = 192
    amplitude: tuple[float, float] = (0.035, 0.08)
    duration: tuple[float, float] = (0.18, 0.45)
    rest_amplitude: tuple[float, float] = (0.04, 0.1)
    blink_probability: float = 0.35
    distractor_probability: float = 0.25
    noise_sigma: tuple[float, float] = (1.0, 3.0)
    jitter: float = 0.08
    drift: float = 0.6
    roll_jitter: float = 0.03
    flicker: float = 0.015
    jpeg_quality: int = 95
    capture: str = "single"

    def __post_init__(self) -> None:
        """Refuse values the generator cannot use (a float count, a negative seed, a NaN rate), naming
        the parameter, before anything is rendered or cached.

        Raises:
            OptionError: the first bad parameter.
        """
        check_whole("synthetic set", "subjects", self.subjects, 2, MAX_SUBJECTS)
        check_whole("synthetic set", "clips_per_subject", self.clips_per_subject, 1, MAX_CLIPS)
        check_whole("synthetic set", "seed", self.seed, 0, MAX_SEED)
        check_whole("synthetic set", "frame_size", self.frame_size, 64, 2_048)
        check_whole("synthetic set", "jpeg_quality", self.jpeg_quality, 1, 100)
        check_number("synthetic set", "fps", self.fps, above=0, hi=10_000)
        if self.capture not in CAPTURES:
            raise OptionError(f"synthetic set: capture {self.capture!r}: expected one of {', '.join(CAPTURES)}")
        for name in ("blink_probability", "distractor_probability"):
            check_number("synthetic set", name, getattr(self, name), lo=0, hi=1)
        for name in ("jitter", "drift", "roll_jitter", "flicker"):
            check_number("synthetic set", name, getattr(self, name), lo=0)
        for name in ("amplitude", "duration", "rest_amplitude", "noise_sigma"):
            check_range("synthetic set", name, getattr(self, name), positive=name == "duration")

    def subject_capture(self, index: int) -> tuple[float, bool]:
        """(frames per second, grayscale) of pseudo-subject ``index`` (0-based)."""
        if self.capture == "databases":
            _, fps, gray = CAPTURE_PROFILES[index % len(CAPTURE_PROFILES)]
            return fps, gray
        return float(self.fps), False

    def key(self) -> dict:
        """The parameters as the cache key holds them: ``capture`` only when not ``single`` (sets
        generated before it existed keep their cache folder)."""
        from dataclasses import asdict

        return {k: v for k, v in asdict(self).items() if not (k == "capture" and v == "single")}

    @classmethod
    def for_expression(cls, expression: str = "micro", **options) -> SyntheticConfig:
        """The config of micro-expressions (the defaults) or macro-expressions (:data:`MACRO_EXPRESSION`).

        Raises:
            ValueError: an expression not in :data:`EXPRESSIONS`.
        """
        if expression not in EXPRESSIONS:
            raise ValueError(f"unknown synthetic expression {expression!r}; expected one of {EXPRESSIONS}")
        return cls(**{**(MACRO_EXPRESSION if expression == "macro" else {}), **options})
