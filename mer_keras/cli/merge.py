"""``mer-keras merge``: pool the LOSO folds of runs that each ran some of them."""

from __future__ import annotations

from mer_keras.cli.common import command, console
from mer_keras.jobs.merge import MergeOptions


def _merge(opts: MergeOptions) -> None:
    from mer_keras.jobs.merge import merge

    console.print(str(merge(opts, console)), highlight=False, soft_wrap=True)


merge = command(MergeOptions, _merge, doc="""Pool fold predictions of several runs into one results.json """
                """(accuracy, UF1, UAR over all folds).

    The runs must share every option that changes results (model, data, seed, epochs, ...); a
    fold found twice must agree. The merged run folder is printed as the last line.
    """)
