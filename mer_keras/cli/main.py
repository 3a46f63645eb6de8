"""Entry point of the ``mer-keras`` console script."""

from __future__ import annotations

import os
from typing import Annotated

import typer

import mer_keras  # (selects tf_keras before TensorFlow loads)
from mer_keras.cli import data
from mer_keras.cli.ensemble import ensemble
from mer_keras.cli.env import env
from mer_keras.cli.evaluate import evaluate
from mer_keras.cli.explain import explain
from mer_keras.cli.export import export
from mer_keras.cli.merge import merge
from mer_keras.cli.models import models
from mer_keras.cli.predict import predict
from mer_keras.cli.spot import spot
from mer_keras.cli.train import train
from mer_keras.cli.tune import tune

app = typer.Typer(add_completion=False, no_args_is_help=False, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="Facial micro-expression recognition with Keras: train, evaluate and export.")


def _version(value: bool) -> None:
    if value:
        print(f"mer-keras {mer_keras.__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                               help="Print the version and exit.")] = False,
         verbose: Annotated[bool, typer.Option("--verbose", help="Show TensorFlow's native start-up and converter "
                                                                 "lines (hidden by default).")] = False) -> None:
    """Facial micro-expression recognition with Keras: train, evaluate and export."""
    if verbose:
        os.environ["MER_KERAS_VERBOSE"] = "1"  # read by mer_keras._keras when TensorFlow loads
app.command()(train)
app.command()(tune)
app.command()(predict)
app.command()(spot)
app.command()(evaluate)
app.command()(export)
app.command()(merge)
app.command()(ensemble)
app.command()(models)
app.command()(explain)
app.command()(env)
app.add_typer(data.app, name="data")

if __name__ == "__main__":
    app()
