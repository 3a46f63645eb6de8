"""Keras callbacks specific to mer-keras."""

from __future__ import annotations

from mer_keras._keras import keras


class ProgressCallback(keras.callbacks.Callback):
    """Advance a rich progress task by one per finished epoch and show the training loss.

    Args:
        progress: a ``rich.progress.Progress``; task: its task id.
    """

    def __init__(self, progress, task):
        super().__init__()
        self.progress, self.task = progress, task

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        acc = logs.get("accuracy", logs.get("predictions_accuracy", float("nan")))  # multi-output: per output
        self.progress.update(self.task, advance=1, info=f"loss {logs.get('loss', float('nan')):.3f}  acc {acc:.2f}")
