"""The learned second stage of the spotter: a logistic regression that keeps or drops each
candidate interval from its measurements (TF-free; ``SpotConfig(method="learned")``).

The analytic spotter (:mod:`mer_keras.runtime.spotting`) keeps a candidate when its peak is at
least ``min_snr`` times the motion near its neutral references and it is at least
``min_duration`` long. The learned stage replaces those two rules with
P(candidate is a true interval of its type | its features) >= ``threshold``; candidate
generation, the blink rule and the one-report-per-movement rule are the same.

Features (:data:`FEATURES`, from :func:`candidate_features`): the logarithms of the peak-to-
reference ratio (the analytic rule's SNR), of the eye-to-face change ratio (the blink rule's),
of the duration in seconds, of the peak and of the top-cell motion (flow magnitude, px), and of
the run's peak over the threshold; whether the run came from the micro scale, whether its length
makes it a micro-expression, and whether the video is under 100 fps.

:data:`LEARNED` was fitted by ``python tools/fit_spotter.py`` (see there and docs/SPOTTING.md)
on candidates of synthetic development videos only (seeds 100-102 at 200 fps, 100-103 at 30 fps),
labelled true when they match a ground-truth interval of their own type with IoU >= 0.5. The
regularisation C and the threshold were chosen by leave-one-video-out F1 on those videos.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mer_keras.preprocess import portable

#: Names of the features, in the order of :func:`candidate_features`.
FEATURES = ("log_snr", "log_eye_ratio", "log_duration_s", "log_peak", "log_top", "log_run_score",
            "micro_scale", "micro_length", "low_fps")


def candidate_features(snr: float, eye_ratio: float, duration_s: float, peak: float, top: float, run_score: float,
                       micro_scale: bool, micro_length: bool, fps: float) -> np.ndarray:
    """The (len(FEATURES),) float64 feature vector of one candidate (logs floored at 1e-3)."""
    def log(x: float) -> float:
        return math.log(max(float(x), 1e-3)) if math.isfinite(float(x)) else math.log(1e3)

    return np.array([log(snr), log(eye_ratio), log(duration_s), log(peak), log(top), log(run_score),
                     float(micro_scale), float(micro_length), float(fps < 100)], np.float64)


@dataclass(frozen=True)
class SecondStage:
    """A fitted logistic regression on standardised :data:`FEATURES`.

    Attributes:
        mean, scale: the standardisation, one value per feature. coef: the weights; intercept: the bias.
        threshold: the probability at which a candidate is kept, 0..1. fitted_on: how it was made.
    """

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    threshold: float
    fitted_on: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(FEATURES)
        if not (len(self.mean) == len(self.scale) == len(self.coef) == n):
            raise ValueError(f"a spotting second stage needs {n} means, scales and weights ({', '.join(FEATURES)}), "
                             f"got {len(self.mean)}, {len(self.scale)}, {len(self.coef)}")
        values = [*self.mean, *self.scale, *self.coef, self.intercept, self.threshold]
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values) or min(self.scale) <= 0:
            raise ValueError("a spotting second stage needs finite numbers and scales > 0")
        if not 0 < self.threshold < 1:
            raise ValueError(f"a spotting second stage's threshold must be in (0, 1), got {self.threshold}")

    def probability(self, features: np.ndarray) -> float:
        """P(true interval) of one (len(FEATURES),) feature vector, 0..1."""
        z = (np.asarray(features, np.float64) - np.asarray(self.mean)) / np.asarray(self.scale)
        return float(1.0 / (1.0 + math.exp(-float(portable.matmul(z, self.coef) + self.intercept))))

    def to_dict(self) -> dict:
        return {"features": list(FEATURES), "mean": list(self.mean), "scale": list(self.scale),
                "coef": list(self.coef), "intercept": self.intercept, "threshold": self.threshold,
                "fitted_on": self.fitted_on}

    @classmethod
    def from_dict(cls, values: dict, source: str = "the second stage") -> SecondStage:
        """Raises: ValueError naming ``source``: other features, or values missing or out of range."""
        try:
            if list(values.get("features", [])) != list(FEATURES):
                raise ValueError(f"its features {values.get('features')} are not {list(FEATURES)}")
            return cls(tuple(map(float, values["mean"])), tuple(map(float, values["scale"])),
                       tuple(map(float, values["coef"])), float(values["intercept"]), float(values["threshold"]),
                       dict(values.get("fitted_on", {})))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"{source}: not a spotting second stage ({exc})") from None

    @classmethod
    def from_file(cls, path: str | Path) -> SecondStage:
        """Read a JSON file written by ``tools/fit_spotter.py``.

        Raises:
            ValueError: naming the file: missing, not JSON, or not a second stage.
        """
        path = Path(path)
        try:
            values = json.loads(path.read_text())
        except OSError as exc:
            raise ValueError(f"{path}: cannot read the spotting second stage ({exc.strerror or exc})") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: not JSON ({exc})") from None
        if not isinstance(values, dict):
            raise ValueError(f"{path}: not a spotting second stage (a JSON object is expected)")
        return cls.from_dict(values, str(path))


#: The packaged second stage (``SpotConfig(method="learned")`` without ``learned_model``); written by
#: ``python tools/fit_spotter.py --write-module``.
LEARNED: dict = {'features': ['log_snr',
              'log_eye_ratio',
              'log_duration_s',
              'log_peak',
              'log_top',
              'log_run_score',
              'micro_scale',
              'micro_length',
              'low_fps'],
 'mean': [2.0425473579081235,
          0.38004750615111826,
          -0.8903721890757316,
          -0.7667215940641194,
          -0.4129838047464769,
          0.7014349872878173,
          0.5596638655462185,
          0.5932773109243697,
          0.584873949579832],
 'scale': [0.9701575600964636,
           0.6420019827338795,
           0.8429538750063853,
           0.8325631049659892,
           0.8081238150980454,
           0.5687699143210193,
           0.4964274601067957,
           0.4912222951645405,
           0.4927437596588315],
 'coef': [1.4794985654905621,
          -0.3604122311211316,
          0.13086460949589576,
          -5.506873499845618,
          5.182365500873448,
          0.3450497567178513,
          -0.43988221635775177,
          0.49763716233998356,
          -0.1325955415768775],
 'intercept': -0.17768298430999493,
 'threshold': 0.4,
 'fitted_on': {'sets': ['100:4:200',
                        '101:4:200',
                        '102:4:200',
                        '100:4:30',
                        '101:4:30',
                        '102:4:30',
                        '103:4:30'],
               'videos': 28,
               'candidates': 595,
               'true': 239,
               'C': 10.0,
               'threshold_chosen_by': 'leave-one-video-out replayed F1',
               'lovo_f1': 0.7616,
               'analytic_replay_f1': 0.7216}}


def load_stage(path: str | Path | None = None) -> SecondStage:
    """The second stage in ``path`` (a JSON file of ``tools/fit_spotter.py``), or the packaged :data:`LEARNED`.

    Raises:
        ValueError: naming the file: missing, not JSON, or not a second stage.
    """
    return SecondStage.from_file(path) if path else SecondStage.from_dict(LEARNED, "the packaged second stage")

