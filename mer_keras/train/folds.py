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
from mer_keras.train.fit import TrainConfig, final_train_metrics, fit_model
from mer_keras.train.memory import releasing_fit_memory
from mer_keras.train.timing import phase


def run_folds(x: np.ndarray, y: np.ndarray, folds: Sequence[Fold], classes: Sequence[str], cfg: TrainConfig,
              strategy: tf.distribute.Strategy | None = None,
              fold_callbacks: Callable[[Fold], Sequence] | None = None,
              on_fold_end: Callable[[Fold, np.ndarray, dict], None] | None = None,
              aus: Sequence[Sequence[str]] | None = None, completed: dict[str, dict] | None = None,
              backup_root: str | Path | None = None) -> dict:
    """Train and evaluate one model per fold, in the order given.

    Args:
        x: (N, H, W, C) inputs; y: (N,) int labels.
        folds: the folds to run (e.g. ``LOSO().folds(groups, only=only)``); each trains on
            ``fold.train`` and is evaluated on ``fold.test`` (indices into x).
        aus: per sample its AUs (AU heads), or None.
        fold_callbacks: fold -> extra Keras callbacks (e.g. progress).
        on_fold_end: called with the fold, its (n_test, K) probabilities and its result row.
        completed: {fold name: {"probabilities": (n_test, K), "row": dict}} of folds finished by
            an earlier, interrupted run: they are not trained again (resume).
        backup_root: folder of per-fold training backups (``<backup_root>/<fold>``): a fold killed
            mid-way continues from its last finished epoch. None: no backups.
    Returns:
        {"probabilities": (N, K) array (NaN for samples in no test fold), "folds": [per-fold dict]}.
    """
    probs = np.full((len(x), len(classes)), np.nan, np.float32)
    fold_rows = []
    for fold in folds:
        if completed and fold.name in completed:
            probs[fold.test] = completed[fold.name]["probabilities"]
            fold_rows.append(completed[fold.name]["row"])
            continue
        with releasing_fit_memory(timed=True):
            model = fit_model(x[fold.train], y[fold.train], len(classes), cfg, strategy,
                              callbacks=fold_callbacks(fold) if fold_callbacks else (),
                              aus=[aus[i] for i in fold.train] if aus is not None else None,
                              backup_dir=Path(backup_root) / fold.name.replace("/", "__") if backup_root else None)
            final_loss, final_acc = final_train_metrics(model.history.history)
            with phase("predict"):
                p = predict_proba(model, x[fold.test])
            del model
        probs[fold.test] = p
        m = compute_metrics(y[fold.test], p.argmax(1), classes)
        row = {"subject": fold.name, "n_train": int(len(fold.train)), "n_test": int(len(fold.test)),
               "accuracy": m["accuracy"], "uf1": m["uf1"], "uar": m["uar"],
               "final_train_loss": final_loss, "final_train_accuracy": final_acc}
        fold_rows.append(row)
        if on_fold_end:
            with phase("write"):
                on_fold_end(fold, p, row)
    return {"probabilities": probs, "folds": fold_rows}
