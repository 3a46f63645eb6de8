"""``mer-keras merge``: pool the LOSO folds of runs that each ran some of them."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from mer_keras.cli.common import console, user_errors


@user_errors
def merge(
    runs: Annotated[list[str], typer.Argument(help="Run folders of the same experiment (e.g. one per --folds job).")],
    out: Annotated[Optional[str], typer.Option(help="Parent folder of the merged run (default: the first run's).")] = None,
    partial: Annotated[bool, typer.Option("--partial", help="Pool even when some subjects have no fold yet.")] = False,
) -> None:
    """Pool fold predictions of several runs into one results.json (accuracy, UF1, UAR over all folds).

    The runs must share every option that changes results (model, data, seed, epochs, ...); a
    fold found twice must agree. The merged run folder is printed as the last line.
    """
    from mer_keras.train.results import merge_runs

    dest = merge_runs(runs, out=out, partial=partial, console=console)
    console.print(str(dest), highlight=False, soft_wrap=True)
