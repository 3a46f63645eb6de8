"""``mer-keras export``: write a finished run's model in the export formats, verified against Keras."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer

from mer_keras.cli.common import console, user_errors
from mer_keras.export.formats import FORMAT_NAMES, FORMATS, TFLITE_QUANTS, find_format

Format = Enum("Format", {n: n for n in (*FORMAT_NAMES, "all")}, type=str)
Quant = Enum("Quant", {n: n for n in TFLITE_QUANTS}, type=str)


@user_errors
def export(
    run: Annotated[str, typer.Argument(help="Run folder written by mer-keras train.")],
    format: Annotated[Format, typer.Option("--format", help="Export format; 'all' writes every row of the table.")] = Format.tflite,
    quant: Annotated[Optional[Quant], typer.Option(help="TFLite quantization (default none = float32).")] = None,
    qat_epochs: Annotated[int, typer.Option(min=1, help="Quantization-aware fine-tuning epochs (--quant qat).")] = 3,
    qat_lr: Annotated[float, typer.Option(min=0.0, help="Learning rate of the QAT fine-tuning.")] = 1e-4,
    verify_data: Annotated[Optional[str], typer.Option(help="Held-out database or manifest to verify on (runs on real data).")] = None,
    verify_root: Annotated[Optional[str], typer.Option(help="Root of --verify-data.")] = None,
) -> None:
    """Export the run's final model next to metadata.json, and verify it against the Keras model."""
    from mer_keras.export.exporter import QATOptions, export_run

    if format.value == "all":
        if quant is not None:
            raise ValueError("--format all writes every quantization; leave --quant out")
        names = list(FORMATS)
    else:
        names = [find_format(format.value, quant.value if quant else None).name]
    export_run(run, names, console, qat=QATOptions(epochs=qat_epochs, lr=qat_lr), verify_data=verify_data,
               verify_root=verify_root)
    console.print(run, highlight=False, soft_wrap=True)


export.__doc__ += "\n\n" + "\n\n".join(f"{f.format}{' --quant ' + f.quant if f.quant else ''}: {f.description}"
                                       for f in FORMATS.values())
