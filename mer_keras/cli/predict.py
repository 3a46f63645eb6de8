"""``mer-keras predict``: classify videos, frame folders, images or a dataset with a trained model."""

from __future__ import annotations

from mer_keras.cli.common import command, console
from mer_keras.jobs.predict import PredictOptions


def _predict(opts: PredictOptions) -> None:
    from mer_keras.jobs.predict import run_predict

    run_predict(opts, console)


predict = command(PredictOptions, _predict,
                  doc="Classify clips (videos, frame folders, onset/apex images, ready representation images, or a "
                      "dataset) with a trained model, preprocessed as in training; a table, and CSV or JSON. The model "
                      "file is checked against its metadata.json first (sha256, outputs against classes).")
