"""``mer-keras evaluate``: re-score a saved model (Keras or TFLite)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from mer_keras.cli.common import console, user_errors


@user_errors
def evaluate(
    target: Annotated[str, typer.Argument(help="Run folder, or a .keras/.tflite file with metadata.json beside it.")],
    seed: Annotated[Optional[int], typer.Option(help="Seed of the synthetic evaluation set (default: run seed + 1).")] = None,
    subjects: Annotated[int, typer.Option(min=2, help="Pseudo-subjects in the evaluation set.")] = 6,
    clips: Annotated[int, typer.Option(min=1, help="Clips per subject.")] = 10,
    out: Annotated[Optional[str], typer.Option(help="Output folder (default RUN/eval-<time>).")] = None,
    cache_dir: Annotated[Optional[str], typer.Option(help="Cache folder.")] = None,
) -> None:
    """Score the Keras model and every TFLite export on new synthetic clips; report their agreement with fp32."""
    from mer_keras.train.evaluate import EvalOptions
    from mer_keras.train.evaluate import evaluate as run_evaluate

    folder = run_evaluate(EvalOptions(target=target, seed=seed, subjects=subjects, clips=clips, out=out,
                                      cache_dir=cache_dir), console)
    console.print(str(folder), highlight=False, soft_wrap=True)

