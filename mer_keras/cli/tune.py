"""``mer-keras tune``: LOSO with each test subject's recipe chosen by nested selection on its
training subjects (:mod:`mer_keras.jobs.tune`)."""

from __future__ import annotations

from mer_keras.cli.common import command, console
from mer_keras.jobs.tune import TuneOptions


def _tune(opts: TuneOptions) -> None:
    from mer_keras.jobs.tune import tune

    run = tune(opts, console)
    console.print(str(run), highlight=False, soft_wrap=True)


tune = command(TuneOptions, _tune, doc="""LOSO in which each test subject's training recipe (learning rate, """
               """epochs, augmentation, ...) is chosen by a nested leave-subjects-out loop that never sees it.

    The subjects are split into --groups groups; the recipe of a test subject is the one with the
    best pooled inner UF1 over leave-one-group-out among the other groups. The final model uses
    the choice over all groups. Every inner score is in RUN/selection.json. The run folder is
    printed as the last line.
    """)
