"""``mer-keras ensemble``: average finished runs' class probabilities clip by clip (:mod:`mer_keras.jobs.ensemble`)."""

from __future__ import annotations

from mer_keras.cli.common import command, console
from mer_keras.jobs.ensemble import EnsembleOptions


def _ensemble(opts: EnsembleOptions) -> None:
    from mer_keras.jobs.ensemble import ensemble

    console.print(str(ensemble(opts, console)), highlight=False, soft_wrap=True)


ensemble = command(EnsembleOptions, _ensemble, doc="""Average the class probabilities of finished runs over the """
                   """same clips (seeds of a recipe, or models on the same input) into one run folder.

    Each member weighs the same; the pooled report (accuracy, UF1, UAR, per database) is computed
    from the mean probabilities. When every member has a final model, their average is saved as one
    model with its TFLite exports. The ensemble's run folder is printed as the last line.
    """)
