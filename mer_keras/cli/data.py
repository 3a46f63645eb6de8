"""``mer-keras data``: dataset preparation."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

import typer

from mer_keras.cli.common import command, console, err_console
from mer_keras.jobs.prepare import PrepareOptions

app = typer.Typer(help="Prepare datasets: preprocess every clip once into the cache.", no_args_is_help=True)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM received by the command: raised in its main thread, where library code
    cleans up as for Ctrl-C (worker processes stopped, unfinished files removed)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def stop_on_signals():
    """Within the block, SIGINT and SIGTERM raise :class:`Interrupted` in the main thread, once.

    Where Python drops an exception (a garbage-collector callback such as jax's
    ``_xla_gc_callback``, a ``__del__``, a weakref callback: it would print "Exception ignored in
    ..." and go on), the interrupt is not lost: the signal is sent again 50 ms later, silently. A
    second signal while the first is being handled is ignored, so that the cleanup finishes.
    Outside the main thread the block changes nothing (only the main thread may set handlers).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    state = {"raised": False}

    def handler(signum, frame):
        if state["raised"]:
            return
        state["raised"] = True
        raise Interrupted(signum)

    def unraisable(info):
        if isinstance(info.exc_value, Interrupted):  # dropped where it was raised: raise it again
            state["raised"] = False
            threading.Timer(0.05, os.kill, (os.getpid(), info.exc_value.signum)).start()
        else:
            hook(info)

    hook = sys.unraisablehook
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    sys.unraisablehook = unraisable
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        sys.unraisablehook = hook


def _prepare(opts: PrepareOptions) -> None:
    """Run the job and print its table; on SIGINT / SIGTERM, one line and exit code 130 / 143."""
    with stop_on_signals():
        try:
            _prepare_and_report(opts)
        except KeyboardInterrupt as exc:  # Interrupted, or Ctrl-C before or after the handlers
            signum = getattr(exc, "signum", signal.SIGINT)
            done = getattr(exc, "prepared", None)
            progress = f" after {done[0]} of {done[1]} inputs" if done else ""
            err_console.print(f"interrupted by {signal.Signals(signum).name}{progress}: every input prepared so far "
                              "stays in the cache; run the same command again to resume", highlight=False,
                              soft_wrap=True)
            raise typer.Exit(128 + signum) from None


def _prepare_and_report(opts: PrepareOptions) -> None:
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

    Re-running with the same parameters does no work; a killed or interrupted run resumes (Ctrl-C
    or SIGTERM stop the workers and exit with 130 or 143). Bad clips are skipped and listed with
    their file and row (fatal with --strict). Several runs may fill one cache at once.
    """))
