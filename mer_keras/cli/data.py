"""``mer-keras data``: dataset preparation."""

from __future__ import annotations

import typer

from mer_keras.cli.common import command, console
from mer_keras.jobs.prepare import PrepareOptions

app = typer.Typer(help="Prepare datasets: preprocess every clip once into the cache.", no_args_is_help=True)


def _prepare(opts: PrepareOptions) -> None:
    from rich.table import Table

    from mer_keras.data.database import describe
    from mer_keras.jobs.prepare import prepare

    report = prepare(opts, console)
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
    for w in report.warnings:
        console.print(f"[yellow]warning:[/] {w}", soft_wrap=True, highlight=False)
    for rep, folder in report.folders.items():
        console.print(f"{rep}: {folder}", soft_wrap=True, highlight=False)


app.command("prepare")(command(PrepareOptions, _prepare, doc="""Align faces and build the model inputs of every clip """
                               """(default: the dynamic image, onset->apex
    flow + strain and apex crop; with --model, what those models consume).

    Re-running with the same parameters does no work; a killed run resumes. Bad clips are skipped
    and listed with their file and row (fatal with --strict).
    """))
