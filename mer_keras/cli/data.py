"""``mer-keras data``: dataset preparation."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer

from mer_keras.cli.common import console, user_errors
from mer_keras.data.datasets import DATASETS

app = typer.Typer(help="Prepare datasets: preprocess every clip once into the cache.", no_args_is_help=True)
DataName = Enum("DataName", {n: n for n in DATASETS if n != "synthetic"}, type=str)


@app.command()
@user_errors
def prepare(
    db: Annotated[DataName, typer.Argument(help="Database, composite, or manifest.")],
    root: Annotated[Optional[str], typer.Option(help="Database folder (or manifest CSV); default $MER_DATA_ROOT/<DB>.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Processes (each loads its own face mesh).")] = 1,
    strict: Annotated[bool, typer.Option("--strict", help="Stop at the first bad clip.")] = False,
    cache_dir: Annotated[Optional[str], typer.Option(help="Cache folder (default $MER_CACHE_DIR or ~/.cache/mer_keras).")] = None,
    model: Annotated[Optional[list[str]], typer.Option(
        help="Build the inputs of these models (repeatable), e.g. --model htnet --model au_convlstm; default: "
             "dynamic image 112, apex 112 and flow 28.")] = None,
) -> None:
    """Align faces and build the model inputs of every clip (default: the dynamic image, onset->apex
    flow + strain and apex crop; with --model, what those models consume).

    Re-running with the same parameters does no work; a killed run resumes. Bad clips are skipped
    and listed with their file and row (fatal with --strict).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from mer_keras.data.database import describe
    from mer_keras.data.prepare import prepare_dataset
    from mer_keras.preprocess.cache import default_cache_dir

    cache = default_cache_dir(cache_dir)
    with Progress(TextColumn("{task.description:<20}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as prog:
        tasks = {}

        def progress(rep, done, total):
            if rep not in tasks:
                tasks[rep] = prog.add_task(rep, total=total)
            prog.update(tasks[rep], completed=done)

        extra = {}
        if model:
            from mer_keras.registry import get_spec

            extra["representations"] = list(dict.fromkeys(get_spec(m).data_config() for m in model))
        report = prepare_dataset(str(getattr(db, "value", db)), root, cache, workers=workers, strict=strict,
                                 progress=progress, **extra)
    classes = sorted({c for _, c in report.counts})
    table = Table("subject", *classes, "total", title=f"{report.dataset}: {report.prepared} clips prepared")
    for subject in sorted({s for s, _ in report.counts}):
        row = [report.counts.get((subject, c), 0) for c in classes]
        table.add_row(subject, *map(str, row), str(sum(row)))
    totals = [sum(report.counts.get((s, c), 0) for s in {s for s, _ in report.counts}) for c in classes]
    table.add_row("total", *map(str, totals), str(sum(totals)))
    console.print(table)
    if report.skipped:
        console.print(f"{len(report.skipped)} clip(s) skipped:")
        for where, why in report.skipped:
            console.print(f"  {describe(where, why)}", soft_wrap=True, highlight=False)
    for rep, folder in report.folders.items():
        console.print(f"{rep}: {folder}", soft_wrap=True, highlight=False)
