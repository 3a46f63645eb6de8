"""Entry point of the ``mer-keras`` console script."""

from __future__ import annotations

import typer

import mer_keras  # noqa: F401  (selects tf_keras before TensorFlow loads)
from mer_keras.cli import data
from mer_keras.cli.ensemble import ensemble
from mer_keras.cli.evaluate import evaluate
from mer_keras.cli.explain import explain
from mer_keras.cli.export import export
from mer_keras.cli.merge import merge
from mer_keras.cli.models import models
from mer_keras.cli.train import train
from mer_keras.cli.tune import tune

app = typer.Typer(add_completion=False, no_args_is_help=False, pretty_exceptions_enable=False,
                  help="Facial micro-expression recognition with Keras: train, evaluate and export.")
app.command()(train)
app.command()(tune)
app.command()(evaluate)
app.command()(export)
app.command()(merge)
app.command()(ensemble)
app.command()(models)
app.command()(explain)
app.add_typer(data.app, name="data")

if __name__ == "__main__":
    app()
