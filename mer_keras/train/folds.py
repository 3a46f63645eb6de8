"""Training and evaluation over folds (LOSO or any protocol's folds).

Honest protocol: every fold trains for a fixed number of epochs on the training subjects only;
nothing (epoch, threshold, checkpoint) is chosen by looking at the test subject. Class weights,
when on, come from the training labels of the fold.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from mer_keras._keras import tf
from mer_keras.data.protocols import Fold
from mer_keras.metrics import compute_metrics
from mer_keras.models.inference import predict_proba
from mer_keras.train.fit import FoldTrainer, TrainConfig
from mer_keras.train.memory import releasing_fit_memory
from mer_keras.train.timing import phase

#: Name of the pseudo-fold that fits the final model (every training clip, no test clip) inside a
#: program of protocol folds with the same steps per epoch (``run_folds(..., final=...)``).
FINAL = "(final model)"


def folds_by_config(folds: Sequence[Fold], cfg_of: Callable[[str], TrainConfig]) -> list[tuple[TrainConfig, list]]:
    """The folds grouped by their training config (a nested selection gives each test subject its
    recipe): [(config, its folds in the order of ``folds``)], each group one :func:`run_folds` call."""
    plans: dict[str, tuple[TrainConfig, list]] = {}
    for fold in folds:
        cfg = cfg_of(fold.name)
        plans.setdefault(repr(sorted(cfg.to_dict().items())), (cfg, []))[1].append(fold)
    return list(plans.values())


def run_folds(x: np.ndarray, y: np.ndarray, folds: Sequence[Fold], classes: Sequence[str], cfg: TrainConfig,
              strategy: tf.distribute.Strategy | None = None,
              fold_callbacks: Callable[[Sequence[Fold]], Sequence] | None = None,
              on_fold_end: Callable[[Fold, np.ndarray, dict], None] | None = None,
              aus: Sequence[Sequence[str]] | None = None, completed: dict[str, dict] | None = None,
              backup_root: str | Path | None = None, checkpoints: Sequence[int] | None = None,
              final: np.ndarray | None = None, soft_targets: dict[str, np.ndarray] | None = None,
              predict_all: bool = False, test_flip: bool = False) -> dict:
    """Train and evaluate one model per fold.

    Folds with equal steps per epoch train together, ``cfg.parallel_folds`` per program (0: chosen
    by :func:`~mer_keras.train.multifold.choose_parallel_folds`), vectorised inside each op
    (:class:`~mer_keras.train.vectorized.trainer.VectorizedTrainer`: each fold on its own batches, with
    its own loss, Adam state and dropout masks); a fold alone, or a model the folded program does
    not translate, trains by :class:`~mer_keras.train.fit.FoldTrainer`. Every fold starts from
    the same seeded weights and a fresh optimizer.

    Args:
        x: (N, H, W, C) inputs; y: (N,) int labels.
        folds: the folds to run (e.g. ``LOSO().folds(groups, only=only)``); each trains on
            ``fold.train`` and is evaluated on ``fold.test`` (indices into x).
        aus: per sample its AUs (AU heads), or None.
        fold_callbacks: the folds trained together -> extra Keras callbacks (e.g. progress).
        on_fold_end: called with the fold, its (n_test, K) probabilities and its result row.
        completed: {fold name: {"probabilities": (n_test, K), "row": dict}} of folds finished by
            an earlier, interrupted run: they are not trained again (resume).
        backup_root: folder of training backups (``<backup_root>/<fold>``, or ``<backup_root>/group-...``
            for folds trained together): a fit killed mid-way continues from its last backed-up
            epoch. None: no backups.
        checkpoints: epoch counts after which each fold's test samples are also predicted (for
            validation folds of a nested selection; :class:`~mer_keras.train.callbacks.CheckpointPredictions`).
            Not with ``completed`` folds or ``backup_root`` (a resumed fit has no earlier epochs).
        final: indices of the final model's training clips, or None. Where folds train as
            programs and one of them has the final fit's steps per epoch and fewer than the folds
            per program (``cfg.parallel_folds``; auto: up to 72), the final model trains in that
            program, as one more fold (:data:`FINAL`; same seed, initial weights and recipe as
            it gets alone, within the engine's float tolerance); its weights are then in the result.
        soft_targets: {fold name (and :data:`FINAL` with ``final``): (N, K) float32 target
            distributions of every sample of x}: each fold trains on its own row of targets for its
            training samples instead of their labels (distillation: :mod:`mer_keras.train.distill`;
            the test metrics stay against the labels). None: the labels.
        predict_all: also predict every sample of x with each fold's model (teachers of a
            distillation): the result's "all_probabilities" {fold name: (N, K)}.
        test_flip: also predict each fold's test samples mirrored (u negated for flow inputs, as
            training flips them, :func:`~mer_keras.train.tfdata.flipped`) and average the two: the
            result's "probabilities_test_flip" (N, K), from the same fold models as "probabilities"
            (NaN for ``completed`` folds: a measurement of a whole run, not resumable).
    Returns:
        {"probabilities": (N, K) array (NaN for samples in no test fold), "folds": [per-fold dict],
        "parallel_folds": folds trained at once, and with ``checkpoints`` "checkpoints":
        {fold name: {epoch: (n_test, K) array}}}; the fold rows are in the order of ``folds``.
        With ``final`` trained here, "final_weights" (the registry model's weights, in
        ``get_weights()`` order) and "final_model" (a function returning the registry model holding them).
        With ``predict_all``, "all_probabilities"; with ``test_flip``, "probabilities_test_flip".
    Raises:
        OptionError: ``cfg.parallel_folds`` > 1 where it does not apply; a fold whose training loss,
            weights or test probabilities became NaN or infinite (the fold and epoch named; nothing
            of it reaches ``on_fold_end``). Such a fold stops alone: the other folds (of its program
            and after it) finish and are written first, then the error names the first diverged fold.
    """
    from mer_keras.errors import OptionError
    from mer_keras.train.callbacks import divergence_message
    from mer_keras.train.fit import learning_rate
    from mer_keras.train.multifold import (
        choose_parallel_folds,
        group_folds,
        group_name,
        steps_per_epoch,
    )

    if checkpoints and final is not None:
        raise ValueError("checkpoint predictions are for validation folds: no final model in the same call")
    if checkpoints and (completed or backup_root):
        raise ValueError("checkpoint predictions need every fold trained from epoch 0 in this call: no completed "
                         "folds, no backups")
    at_epochs: dict[str, dict[int, np.ndarray]] = {}
    every: dict[str, np.ndarray] = {}
    probs_flip = np.full((len(x), len(classes)), np.nan, np.float32) if test_flip else None
    probs = np.full((len(x), len(classes)), np.nan, np.float32)
    rows: dict[str, dict] = {}
    pending = [f for f in folds if not (completed and f.name in completed)]
    for fold in folds:
        if completed and fold.name in completed:
            probs[fold.test] = completed[fold.name]["probabilities"]
            rows[fold.name] = completed[fold.name]["row"]
    k = choose_parallel_folds(cfg, x.shape[1:], len(classes), len(pending) + (final is not None),
                              cfg.parallel_folds, strategy) if pending else 1
    diverged: list[str] = []
    out_final: dict = {}
    programs = group_folds(pending, cfg.batch_size, k)
    if final is not None and k > 1:  # the final model joins a program of its steps per epoch that has room
        steps = steps_per_epoch(len(final), cfg.batch_size)
        for group in programs:
            if len(group) < k and steps_per_epoch(len(group[0].train), cfg.batch_size) == steps:
                group.append(Fold(FINAL, np.asarray(final), np.zeros(0, np.int64)))
                break

    def finish(fold, p, final_loss, final_acc):
        if not np.isfinite(p).all():  # finite weights whose logits overflow: never into a fold file
            diverged.append(divergence_message(f"fold {fold.name}", "the test probabilities are NaN or infinite",
                                               cfg.epochs, cfg.epochs, learning_rate(cfg)))
            return
        probs[fold.test] = p
        m = compute_metrics(y[fold.test], p.argmax(1), classes)
        row = {"subject": fold.name, "n_train": int(len(fold.train)), "n_test": int(len(fold.test)),
               "accuracy": m["accuracy"], "uf1": m["uf1"], "uar": m["uar"],
               "final_train_loss": final_loss, "final_train_accuracy": final_acc}
        rows[fold.name] = row
        if on_fold_end:
            with phase("write"):
                on_fold_end(fold, p, row)

    with releasing_fit_memory(timed=True):
        trainers: dict[bool, object] = {}
        for group in programs:
            callbacks = list(fold_callbacks(group)) if fold_callbacks else []
            together = len(group) > 1
            if together not in trainers:
                if together:
                    from mer_keras.train.vectorized.trainer import VectorizedTrainer

                    trainers[together] = VectorizedTrainer(x.shape[1:], len(classes), cfg)
                else:
                    trainers[together] = FoldTrainer(x.shape[1:], len(classes), cfg, strategy, classes)
            results = trainers[together].fit_program(
                x, y, [f.train for f in group], callbacks,
                backup_dir=Path(backup_root) / group_name(group) if backup_root else None,
                labels=["the final model" if f.name == FINAL else f"fold {f.name}" for f in group],
                holdouts=[x[f.test] for f in group] if checkpoints else None, checkpoints=checkpoints, aus=aus,
                soft_targets=[soft_targets[f.name][f.train] for f in group] if soft_targets is not None else None)
            for fold, result in zip(group, results):
                if result.diverged:
                    diverged.append(result.diverged)
                elif fold.name == FINAL:
                    out_final.update(final_weights=result.weights, final_model=result.model)
                else:
                    with phase("predict"):
                        if predict_all:
                            every[fold.name] = predict_proba(result.model(), x)
                            p = every[fold.name][fold.test]
                        else:
                            p = predict_proba(result.model(), x[fold.test])
                        if test_flip:
                            from mer_keras.train.tfdata import flipped

                            mirrored = predict_proba(result.model(), flipped(x[fold.test], cfg.flow_input))
                            probs_flip[fold.test] = (p + mirrored) / 2.0
                    if checkpoints:
                        at_epochs[fold.name] = result.checkpoints
                    finish(fold, p, result.final_loss, result.final_accuracy)
    if diverged:  # the other folds are written: --resume trains only these again
        more = f" (and {len(diverged) - 1} more fold(s) that diverged)" if len(diverged) > 1 else ""
        raise OptionError(diverged[0] + more)
    out = {"probabilities": probs, "folds": [rows[f.name] for f in folds if f.name in rows], "parallel_folds": k,
           **out_final}
    if checkpoints:
        out["checkpoints"] = at_epochs
    if predict_all:
        out["all_probabilities"] = every
    if test_flip:
        out["probabilities_test_flip"] = probs_flip
    return out
