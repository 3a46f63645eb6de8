"""What every training program shares, whether it trains one fold or many at once.

A *program* is one Keras ``fit`` that trains one or more folds: :class:`mer_keras.train.fit.FoldTrainer`
trains one fold (any model, any strategy), :class:`mer_keras.train.vectorized.trainer.VectorizedTrainer`
trains G groups of K folds vectorised inside each op. Both run the same skeleton:

* every fold's figures are in the epoch's logs under ``fold<i>_`` (``fold<i>_train_loss``,
  ``fold<i>_accuracy`` and any auxiliary figure), so the callbacks that write a fold's history
  CSV, its TensorBoard run and the progress bar read one layout (:class:`PlainFoldLogs` puts a
  single model's logs there; the folded model logs so itself);
* a fold whose training loss becomes NaN or infinite stops alone (:class:`FoldDivergence`): its
  epoch is written nowhere, the other folds of its program finish, and the fold comes back as a
  :class:`FoldFit` with ``diverged`` set;
* the same order of callbacks (:func:`program_callbacks`): divergence check first, then the
  epoch clock, the training backup, what the caller adds;
* the backup removed when the fit ends, and every fold's outcome returned as a :class:`FoldFit`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from mer_keras._keras import keras


@dataclass
class FoldFit:
    """One fold's outcome of a program.

    Attributes:
        label: the fold's name in messages (``fold sub01``, ``the final model``).
        model: returns the ordinary registry ``keras.Model`` holding the fold's weights (a model
            the trainer reuses: predict or copy its weights before the trainer's next fit).
        weights: the fold's weights in the registry model's ``get_weights()`` order.
        final_loss, final_accuracy: the last epoch's training figures (None when diverged, or when a
            resumed fit ran no epoch in this process).
        diverged: the one-line divergence message, or None.
        checkpoints: {epoch: (n, K) float32 probabilities of the fold's held-out samples} (nested selection).
    """

    label: str
    model: Callable[[], keras.Model]
    weights: list = field(default_factory=list)
    final_loss: float | None = None
    final_accuracy: float | None = None
    diverged: str | None = None
    checkpoints: dict = field(default_factory=dict)


class PlainFoldLogs(keras.callbacks.Callback):
    """A single model's epoch logs also under ``fold0_``: ``loss`` as ``fold0_train_loss``, every
    other figure (``accuracy``, auxiliary losses) as ``fold0_<name>``, the layout a program of folds
    logs (:class:`mer_keras.train.vectorized.model.FoldLogs`). It must come first among the fit's callbacks."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        for key, value in list(logs.items()):
            if not key.startswith("fold"):
                logs["fold0_train_loss" if key == "loss" else f"fold0_{key}"] = value


class FoldDivergence(keras.callbacks.Callback):
    """A fold whose training loss becomes NaN or infinite stops; the other folds of its program go on.

    At the end of each epoch, every fold whose ``fold<i>_train_loss`` is not finite is recorded with
    its epoch and switched off by ``stop_folds`` (a program of folds: its loss leaves the program's
    loss, so its weights stop changing and cannot reach another fold's); its figures are removed
    from the logs, so no history, TensorBoard run or progress bar shows them. When every fold has
    stopped, the fit ends. It must come first among the program's callbacks (after the callback
    that writes ``fold<i>_`` figures), before anything writes the epoch.

    Args:
        labels: per fold, its name (``fold sub01``). epochs: the fit's epoch count.
        stop_folds: called with the indices of the folds that diverged in this epoch; None for a
            single model (the fit then simply ends).
    Attributes:
        diverged: {fold index: (epoch (1-based), loss value)}.
    """

    def __init__(self, labels: Sequence[str], epochs: int, stop_folds: Callable[[list[int]], None] | None = None):
        super().__init__()
        self.labels, self.epochs, self.stop_folds = list(labels), int(epochs), stop_folds
        self.diverged: dict[int, tuple[int, float]] = {}

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        new = []
        for i in range(len(self.labels)):
            value = logs.get(f"fold{i}_train_loss")
            if i not in self.diverged and value is not None and not math.isfinite(float(value)):
                self.diverged[i] = (epoch + 1, float(value))
                new.append(i)
        if new and self.stop_folds is not None:
            self.stop_folds(new)
        for i in self.diverged:  # what a stopped fold shows from then on: not a figure
            for key in [k for k in logs if k.startswith(f"fold{i}_")]:
                logs.pop(key)
        if self.diverged and len(self.diverged) == len(self.labels):
            self.model.stop_training = True


def program_callbacks(divergence: FoldDivergence, clock, backup_dir=None, backup_minutes: float = 0.0,
                      first: Sequence = (), extra: Sequence = ()) -> list:
    """The callbacks of every program, in their order.

    ``first`` (what puts the folds' figures into the logs), the divergence check, the epoch clock
    (:class:`~mer_keras.train.callbacks.EpochTiming`), the backup (Keras ``BackupAndRestore``
    every ``backup_minutes``, when ``backup_dir``), then ``extra`` (the model's own per-epoch
    callbacks, then the caller's: progress, history CSVs, TensorBoard).
    """
    from mer_keras.train.callbacks import EpochTiming, PeriodicBackupAndRestore

    callbacks = [*first, divergence, EpochTiming(clock)]
    if backup_dir:
        callbacks.append(PeriodicBackupAndRestore(str(backup_dir), 60.0 * backup_minutes))
    return callbacks + list(extra)


def fold_outcomes(labels: Sequence[str], divergence: FoldDivergence, history: dict, weights_of: Callable,
                  model_of: Callable, lr: float | None, checkpoints: Sequence[dict] | None = None) -> list[FoldFit]:
    """Every fold's :class:`FoldFit` after a program's fit.

    A fold is diverged when its training loss became NaN or infinite (its epoch named) or when its
    weights are not finite after the last step (whose update comes after the last measured loss).

    Args:
        labels: per fold its name. divergence: the program's check. history: the fit's
            ``History.history``. weights_of(i) / model_of(weights): fold i's weights, the registry
            model holding them. lr: the learning rate (for the message). checkpoints: per fold its
            held-out probabilities by epoch, or None.
    """
    from mer_keras.train.callbacks import divergence_message

    out = []
    for i, label in enumerate(labels):
        weights = weights_of(i)
        message = None
        if i in divergence.diverged:
            epoch, value = divergence.diverged[i]
            message = divergence_message(label, f"the training loss is {value}", epoch, divergence.epochs, lr)
        elif not all(np.isfinite(w).all() for w in weights):
            message = divergence_message(label, "the weights became NaN or infinite", divergence.epochs,
                                         divergence.epochs, lr)
        loss, acc = history.get(f"fold{i}_train_loss"), history.get(f"fold{i}_accuracy",
                                                                       history.get(f"fold{i}_predictions_accuracy"))
        out.append(FoldFit(label=label, model=(lambda w=weights: model_of(w)), weights=weights,
                           final_loss=float(loss[-1]) if loss and message is None else None,
                           final_accuracy=float(acc[-1]) if acc and message is None else None,
                           diverged=message, checkpoints=checkpoints[i] if checkpoints else {}))
    return out

