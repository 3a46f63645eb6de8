"""The one table of export formats; the CLI choices, validation and docs come from it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExportFormat:
    """One export format.

    Attributes:
        name: CLI name. filename: file written in the run folder. quant: TFLite quantization
        (``None`` for Keras). description: one line for ``--help`` and docs.
    """

    name: str
    filename: str
    quant: str | None
    description: str


FORMATS: dict[str, ExportFormat] = {f.name: f for f in (
    ExportFormat("keras", "model.keras", None, "Keras v3 archive (safe to load: no pickled code)"),
    ExportFormat("tflite_fp32", "model_fp32.tflite", "none", "TFLite, float32 weights and activations"),
    ExportFormat("tflite_int8", "model_int8.tflite", "int8",
                 "TFLite full-integer int8 (int8 input/output), calibrated on training inputs"),
)}
