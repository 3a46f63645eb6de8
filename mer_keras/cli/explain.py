"""``mer-keras explain``: Grad-CAM response map of one sample, as a PNG."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from mer_keras.cli.common import console, user_errors


@user_errors
def explain(
    run: Annotated[str, typer.Argument(help="Run folder written by mer-keras train.")],
    sample: Annotated[str, typer.Option(help="Sample to explain: subject/clip (e.g. sub01/clip03) or its clip id.")],
    layer: Annotated[Optional[str], typer.Option(help="Layer to explain (default: the last spatial layer).")] = None,
    class_name: Annotated[Optional[str], typer.Option("--class", help="Class to explain (default: the prediction).")] = None,
    out: Annotated[Optional[str], typer.Option(help="PNG path (default RUN/explain/<subject>_<clip>.png).")] = None,
) -> None:
    """Draw where the run's final model looks for one sample (Grad-CAM), next to its input."""
    from mer_keras.explain import explain as run_explain

    path = run_explain(run, sample, layer=layer, class_name=class_name, out=out, console=console)
    console.print(str(path), highlight=False, soft_wrap=True)
