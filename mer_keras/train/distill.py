"""Knowledge distillation inside a leave-one-subject-out protocol, without a leak.

A small student (STSTNet-sized, for ``edge/``) learns from an ensemble of teachers (Hinton,
Vinyals & Dean, "Distilling the knowledge in a neural network", NIPS workshop 2014): its target
for a training clip is ``alpha * one_hot(label) + (1 - alpha) * mean_t p_t(clip)``, the mean of
the teachers' softmax outputs at temperature 1 (the cross-entropy against that mix is the paper's
weighted sum of the hard and the soft loss, whose T^2 factor is 1 at T = 1).

What keeps it honest: in fold *s* the teachers' probabilities come from the teachers' own fold-*s*
models, trained without subject *s*; the student of fold *s* trains on fold *s*'s training clips
only, with those targets. No model that saw the test subject, as a training clip or through a
teacher, takes part in its prediction. The final student learns from the teachers' final models.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from mer_keras.data.protocols import Fold
from mer_keras.train.config import TrainConfig


def teacher_probabilities(x: np.ndarray, y: np.ndarray, folds: Sequence[Fold], classes: Sequence[str],
                          cfg_of: Callable[[str], TrainConfig], final: np.ndarray | None = None,
                          final_cfg: TrainConfig | None = None, strategy=None,
                          fold_callbacks=None) -> dict[str, np.ndarray]:
    """One teacher's probabilities of every sample, per fold: each fold's model (trained as
    :func:`~mer_keras.train.folds.run_folds` trains it, on the fold's training subjects) predicts
    every sample of x.

    Args:
        x: (N, ...) float32 inputs; y: (N,) int labels. folds: the protocol's folds.
        cfg_of: fold name -> the teacher's training config for that fold (one config for every
            fold, or a nested selection's recipe per test subject).
        final, final_cfg: the final model's training samples and config, or None.
    Returns:
        {fold name: (N, K) float32 probabilities}, and with ``final``
        ``{FINAL: (N, K)}`` from the teacher's final model.
    """
    from mer_keras.models.inference import predict_proba
    from mer_keras.train.fit import fit_model
    from mer_keras.train.folds import FINAL, folds_by_config, run_folds

    out: dict[str, np.ndarray] = {}
    for cfg, plan in folds_by_config(folds, cfg_of):
        res = run_folds(x, y, plan, classes, cfg, strategy, fold_callbacks=fold_callbacks, predict_all=True)
        out.update(res["all_probabilities"])
    if final is not None:
        model = fit_model(x[final], y[final], len(classes), final_cfg or cfg_of(FINAL), strategy,
                          label="the teacher's final model")
        out[FINAL] = predict_proba(model, x)
    return out


def student_targets(y: np.ndarray, teachers: Sequence[dict[str, np.ndarray]], alpha: float,
                    num_classes: int) -> dict[str, np.ndarray]:
    """The student's target distributions per fold: ``alpha * one_hot(y) + (1 - alpha) * mean of
    the teachers``.

    Args:
        y: (N,) int labels. teachers: per teacher, {fold name: (N, K) probabilities}
            (:func:`teacher_probabilities`); every teacher must cover the same folds.
        alpha: weight of the labels, in [0, 1] (1: no distillation).
    Returns:
        {fold name: (N, K) float32}, each row summing to 1.
    Raises:
        ValueError: alpha outside [0, 1], no teacher, teachers of different folds, or a
            probability that is not finite.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha {alpha!r}: expected a weight from 0 to 1")
    if not teachers:
        raise ValueError("no teacher")
    names = set(teachers[0])
    if any(set(t) != names for t in teachers):
        raise ValueError("the teachers cover different folds: each must predict every fold of the student")
    onehot = np.eye(num_classes, dtype=np.float32)[np.asarray(y)]
    out = {}
    for name in names:
        mean = np.mean([t[name] for t in teachers], axis=0).astype(np.float32)
        if not np.isfinite(mean).all():
            raise ValueError(f"fold {name}: a teacher's probabilities are not finite")
        out[name] = alpha * onehot + (1.0 - alpha) * mean
    return out
