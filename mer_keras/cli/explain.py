"""``mer-keras explain``: Grad-CAM response map of one sample, as a PNG."""

from __future__ import annotations

from mer_keras.cli.common import command, console
from mer_keras.jobs.explain import ExplainOptions


def _explain(opts: ExplainOptions) -> None:
    from mer_keras.jobs.explain import explain

    console.print(str(explain(opts, console)), highlight=False, soft_wrap=True)


explain = command(ExplainOptions, _explain,
                  doc="Draw where the run's final model looks for one sample (Grad-CAM), next to its input. The "
                      "model.keras is checked against the run's metadata.json first.")
