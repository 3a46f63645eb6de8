"""``mer-keras evaluate``: re-score a saved model (Keras or TFLite)."""

from __future__ import annotations

from mer_keras.cli.common import command, console
from mer_keras.jobs.evaluate import EvalOptions


def _evaluate(opts: EvalOptions) -> None:
    from mer_keras.jobs.evaluate import evaluate

    console.print(str(evaluate(opts, console)), highlight=False, soft_wrap=True)


evaluate = command(EvalOptions, _evaluate,
                   doc="Score the Keras model and every TFLite export on new synthetic clips; report their agreement "
                       "with fp32. Every model file is checked against metadata.json first (sha256, outputs against "
                       "classes).")
