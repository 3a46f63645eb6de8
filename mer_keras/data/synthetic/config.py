"""What the synthetic generator makes: its version, classes, class frequencies and parameters."""

from __future__ import annotations

from dataclasses import dataclass

from mer_keras.names import EXPRESSIONS  # noqa: F401  (re-exported)

#: Version of the generator's output; part of the cache key of a generated set (``dataset_dir``).
GENERATOR_VERSION = 3
#: The MEGC2019 composite classes; :data:`mer_keras.facs.AU_COMBINATIONS` gives the AUs of each.
CLASSES = ("negative", "positive", "surprise")
#: Class frequencies of the generated clips, imbalanced like the real composite.
CLASS_PROBABILITIES = (0.45, 0.30, 0.25)
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

    @classmethod
    def for_expression(cls, expression: str = "micro", **options) -> SyntheticConfig:
        """The config of micro-expressions (the defaults) or macro-expressions (:data:`MACRO_EXPRESSION`).

        Raises:
            ValueError: an expression not in :data:`EXPRESSIONS`.
        """
        if expression not in EXPRESSIONS:
            raise ValueError(f"unknown synthetic expression {expression!r}; expected one of {EXPRESSIONS}")
        return cls(**{**(MACRO_EXPRESSION if expression == "macro" else {}), **options})
