"""``mer-keras export``: write a finished run's model in the export formats, verified against Keras."""

from __future__ import annotations

from mer_keras.cli.common import command, console
from mer_keras.export.formats import FORMATS
from mer_keras.jobs.export import ExportOptions


def _export(opts: ExportOptions) -> None:
    from mer_keras.jobs.export import export

    export(opts, console)
    console.print(opts.run, highlight=False, soft_wrap=True)


export = command(ExportOptions, _export, doc="Export the run's final model next to metadata.json, and verify it "
                 "against the Keras model. Exports of one run may run at once: each is recorded in metadata.json "
                 "and export_report.json.\n\n" + "\n\n".join(
                     f"{f.format}{' --quant ' + f.quant if f.quant else ''}: {f.description}"
                     for f in FORMATS.values()))
