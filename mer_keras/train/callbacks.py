"""Keras callbacks specific to mer-keras."""

from __future__ import annotations

import contextlib
import time

from mer_keras._keras import keras


class ProgressCallback(keras.callbacks.Callback):
    """Advance a rich progress task as epochs end and show the training loss and accuracy.

    Args:
        progress: a ``rich.progress.Progress``; task: its task id.
        folds: folds this fit trains (a program of K folds advances the task by K per epoch: a
            task counting fold-epochs shows every fold's progress and its remaining time).
            base: the task's completed count when this fit started.
    With several folds, the loss and accuracy shown are their means over the folds still training.
    """

    def __init__(self, progress, task, folds: int = 1, base: int | None = None):
        super().__init__()
        self.progress, self.task, self.folds = progress, task, int(folds)
        self.base = base

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.base is None:  # a resumed fit starts at its backed-up epoch: counted from the task's start
            self.base = 0
        acc = logs.get("accuracy", logs.get("predictions_accuracy"))  # multi-output: per output
        if acc is None:  # folds trained at once: fold<j>_accuracy per fold, shown as their mean
            per_fold = [v for k, v in logs.items() if k.startswith("fold") and k.endswith("_accuracy")]
            acc = sum(per_fold) / len(per_fold) if per_fold else float("nan")
        training = int(logs.get("folds", self.folds))  # the folds of the program still training
        mean = f"mean of {training} folds: " if self.folds > 1 else ""
        self.progress.update(self.task, completed=self.base + (epoch + 1) * self.folds,
                             info=f"{mean}loss {logs.get('loss', float('nan')):.3f}  acc {acc:.2f}")


class EpochSeeds(keras.callbacks.Callback):
    """Re-seed every random layer (Dropout, SpatialDropout, ...) at the start of each epoch.

    Layer ``j`` draws its masks in epoch ``e`` from a ``tf.random.Generator`` reset to the seed
    ``(seed, e, j)``, so the masks of an epoch do not depend on how many epochs this process has
    run: a fit resumed by ``BackupAndRestore`` at epoch k draws what an uninterrupted fit draws.
    Needs tf_keras' generator-based random layers (``enable_tf_random_generator()``, done by
    :func:`mer_keras.train.determinism.set_determinism`); layers on the legacy stateful ops are left as they are.

    Folds trained together reset their own generators the same way
    (:meth:`mer_keras.train.vectorized.network.FoldedNetwork.reseed`).

    Args:
        seed: the run's seed (int).
    """

    def __init__(self, seed: int):
        super().__init__()
        self.seed = int(seed)

    def on_epoch_begin(self, epoch, logs=None):
        for j, layer in enumerate(random_layers(self.model)):
            layer._random_generator._generator.reset_from_seed(self.seed * 1_000_003 + epoch * 1_009 + j)


def random_layers(model) -> list:
    """The layers of ``model`` (nested ones included, in a fixed order) that draw from a
    ``tf.random.Generator`` (tf_keras ``BaseRandomLayer`` with the generator enabled)."""
    found = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        generator = getattr(getattr(layer, "_random_generator", None), "_generator", None)
        if generator is not None:
            found.append(layer)
    return found


class PeriodicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """Keras ``BackupAndRestore`` that backs up at the end of an epoch only when ``every_seconds``
    have passed since the last backup (0: every epoch).

    A backup holds the weights and both Adam moments (about 12 bytes per parameter: 1.7 GB for
    HTNet), so backing up every epoch of a model with short epochs costs more time than a kill
    could lose. Under a multi-worker strategy the chief decides and every worker follows (the
    backup is a collective step). Restoring is Keras' own: weights, optimizer, epoch counter.

    Args:
        backup_dir: folder of the backup (str). every_seconds: least time between backups (float >= 0).
    """

    def __init__(self, backup_dir: str, every_seconds: float = 0.0):
        super().__init__(backup_dir, save_freq="epoch", delete_checkpoint=True)
        self.every_seconds = float(every_seconds)
        self._last = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        from mer_keras.train.strategy import broadcast_from_chief, is_multiworker

        due = time.monotonic() - self._last >= self.every_seconds
        strategy = self.model.distribute_strategy
        if is_multiworker(strategy):
            due = broadcast_from_chief(strategy, float(due)) == 1.0
        if due:
            super().on_epoch_end(epoch, logs)
            self._last = time.monotonic()


class EpochTiming(keras.callbacks.Callback):
    """Feeds a :class:`mer_keras.train.timing.EpochClock` with the fit's epoch boundaries.

    Args:
        clock: the fit's clock (its ``close()`` is the caller's, after ``fit`` returns).
    """

    def __init__(self, clock):
        super().__init__()
        self.clock = clock

    def on_train_begin(self, logs=None):
        self.clock.fit_begin()

    def on_epoch_begin(self, epoch, logs=None):
        self.clock.epoch_begin()

    def on_epoch_end(self, epoch, logs=None):
        self.clock.epoch_end()


class CheckpointPredictions(keras.callbacks.Callback):
    """Predict held-out samples at the end of chosen epochs of one fit (nested selection of epochs).

    One fit to the largest epoch count scores every smaller count: the probabilities after epoch
    ``e`` are those a fit of ``e`` epochs gives, because each epoch's batches, flips and dropout
    masks depend only on (seed, epoch), not on the total (:func:`~mer_keras.train.tfdata.training_dataset`).
    Used only on validation subjects of an inner loop, never on a test subject.

    Args:
        holdouts: held-out inputs, each (n, ...) float32, predicted by the fitted model.
        epochs: 1-based epoch counts to predict after.
    Attributes:
        probabilities: per held-out array, {epoch: (n, K) float32 probabilities}.
    """

    def __init__(self, holdouts, epochs):
        super().__init__()
        self.holdouts, self.epochs = list(holdouts), {int(e) for e in epochs}
        self.probabilities = [{} for _ in self.holdouts]

    def on_epoch_end(self, epoch, logs=None):
        from mer_keras.models.inference import predict_proba

        if epoch + 1 not in self.epochs:
            return
        with averaged_weights(self.model):  # with an EMA of the weights: what a fit of this many epochs ends with
            for store, x in zip(self.probabilities, self.holdouts):
                store[epoch + 1] = predict_proba(self.model, x)


class EpochHistory(keras.callbacks.Callback):
    """Per-epoch training figures of each fold in a CSV file (``RUN/history/<fold>.csv``), rewritten
    atomically after every epoch: columns ``epoch`` (1-based), ``loss``, ``accuracy`` and any other
    figure Keras logs for the fold (auxiliary losses).

    A fit resumed from a backup at epoch k keeps the file's rows of epochs 1..k and writes the
    rest, so the file is that of an uninterrupted fit.

    Args:
        paths: one CSV path per fold trained by this fit.
        prefixes: per fold, the prefix of its keys in the Keras logs: ``"fold<j>_"`` for fold j of
            a program (:mod:`mer_keras.train.program`; ``fold<j>_train_loss`` is its loss).
    """

    def __init__(self, paths, prefixes):
        super().__init__()
        from pathlib import Path

        self.paths, self.prefixes, self.rows = [Path(p) for p in paths], list(prefixes), None

    def _figures(self, logs: dict, prefix: str) -> dict:
        out = {("loss" if k == f"{prefix}train_loss" else k[len(prefix):]): v for k, v in logs.items()
               if k.startswith(prefix)}
        if "accuracy" not in out and "predictions_accuracy" in out:
            out["accuracy"] = out["predictions_accuracy"]
        return {k: float(v) for k, v in out.items()}

    def on_epoch_begin(self, epoch, logs=None):
        if self.rows is not None:
            return
        import csv

        self.rows = []
        for path in self.paths:
            kept = []
            if epoch > 0 and path.is_file():  # resumed: keep the epochs before the backup
                with open(path, newline="") as fh:
                    kept = [r for r in csv.DictReader(fh) if int(r["epoch"]) <= epoch]
            self.rows.append(kept)

    def on_epoch_end(self, epoch, logs=None):
        import csv

        from mer_keras import atomic

        for path, prefix, rows in zip(self.paths, self.prefixes, self.rows):
            rows.append({"epoch": epoch + 1, **self._figures(logs or {}, prefix)})
            columns = list(dict.fromkeys(k for r in rows for k in r))
            with atomic.atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=columns)
                writer.writeheader()
                writer.writerows(rows)


def divergence_message(label: str, what: str, epoch: int, epochs: int, lr: float | None) -> str:
    """The one-line error of a fit that stopped on non-finite numbers: the fold, the epoch, the likely cause."""
    cause = (f"the learning rate {lr:g} is likely too large (try a smaller --lr)" if lr is not None
             else "the learning rate is likely too large (try a smaller --lr)")
    return f"{label}: {what} at epoch {epoch} of {epochs}; {cause}; nothing of it was written"


class FoldTensorBoard(keras.callbacks.Callback):
    """TensorBoard scalars of each fold of a program in its own run, named by its subject:
    ``<log_dir>/<fold>/train`` with ``epoch_loss``, ``epoch_accuracy`` and the fold's other figures
    (auxiliary losses) per epoch, the tags Keras' ``TensorBoard`` callback writes, whether the fold
    trained alone or with others (``tensorboard --logdir RUN/tensorboard`` lists every subject).

    Args:
        log_dirs: per fold of the program, its folder (``RUN/tensorboard/<fold>``).
        prefixes: per fold, the prefix of its keys in the program's logs (``fold<j>_``).
    """

    def __init__(self, log_dirs, prefixes):
        super().__init__()
        self.log_dirs, self.prefixes, self.writers = [str(d) for d in log_dirs], list(prefixes), None

    def on_epoch_end(self, epoch, logs=None):
        from mer_keras._keras import tf

        logs = logs or {}
        if self.writers is None:
            self.writers = [tf.summary.create_file_writer(f"{d}/train") for d in self.log_dirs]
        for writer, prefix in zip(self.writers, self.prefixes):
            figures = {("loss" if k == f"{prefix}train_loss" else k[len(prefix):]): float(v)
                       for k, v in logs.items() if k.startswith(prefix)}
            if "loss" not in figures:  # a fold that stopped (diverged): nothing more to show
                continue
            with writer.as_default():
                for name, value in figures.items():
                    tf.summary.scalar(f"epoch_{name}", value, step=epoch)
            writer.flush()

    def on_train_end(self, logs=None):
        for writer in self.writers or []:
            writer.close()


@contextlib.contextmanager
def averaged_weights(model: keras.Model):
    """Within the block, ``model``'s trainable weights are its optimizer's moving averages (Keras'
    Adam with ``use_ema``), the weights the fit would end with if it ended now; afterwards the
    trained weights are back. A model whose optimizer keeps no average is left as it is."""
    optimizer = getattr(model, "optimizer", None)
    if not getattr(optimizer, "use_ema", False) or not getattr(optimizer, "_built", False):
        yield
        return
    variables = model.trainable_variables
    trained = [v.numpy() for v in variables]
    optimizer._overwrite_model_variables_with_average_value(variables)
    try:
        yield
    finally:
        for variable, value in zip(variables, trained):
            variable.assign(value)
