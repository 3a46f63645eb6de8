"""The one table of export formats; the CLI choices, validation and docs come from it.

Each row holds the exporter object that writes, loads, predicts and verifies it
(:mod:`mer_keras.export.exporters`); a new format is one exporter and one :func:`register_format`.
"""

from __future__ import annotations

from dataclasses import dataclass

from mer_keras.errors import OptionError
from mer_keras.export.exporters import Exporter, KerasExporter, OnnxExporter, SavedModelExporter, TFLiteExporter


@dataclass(frozen=True)
class ExportFormat:
    """One export format.

    Attributes:
        name: key in :data:`FORMATS` and in reports (``tflite_int8``).
        format: ``--format`` value (``keras``, ``saved_model``, ``tflite``).
        quant: ``--quant`` value for TFLite (``none``, ``fp16``, ``dynamic``, ``int8``, ``qat``),
            ``None`` for the others.
        filename: file (or folder, for SavedModel) written next to metadata.json.
        needs_data: the export reads training inputs (calibration or fine-tuning).
        description: one line for ``--help`` and docs.
        exporter: the object that writes, loads, predicts and verifies the format.
    """

    name: str
    format: str
    quant: str | None
    filename: str
    needs_data: bool
    description: str
    exporter: Exporter


_KERAS, _SAVED_MODEL, _ONNX, _TFLITE = KerasExporter(), SavedModelExporter(), OnnxExporter(), TFLiteExporter()

FORMATS: dict[str, ExportFormat] = {f.name: f for f in (
    ExportFormat("keras", "keras", None, "model.keras", False,
                 "Keras v3 archive of the final model (safe to load: no pickled code)", _KERAS),
    ExportFormat("saved_model", "saved_model", None, "saved_model", False,
                 "TensorFlow SavedModel folder, inference signature 'serve' (TF Serving, TF.js and ONNX converters)",
                 _SAVED_MODEL),
    ExportFormat("onnx", "onnx", None, "model.onnx", False,
                 "ONNX (tf2onnx, opset 17), float32: onnxruntime, and TensorRT on a Jetson (trtexec --onnx)", _ONNX),
    ExportFormat("tflite_fp32", "tflite", "none", "model_fp32.tflite", False,
                 "TFLite, float32 weights and activations", _TFLITE),
    ExportFormat("tflite_fp16", "tflite", "fp16", "model_fp16.tflite", False,
                 "TFLite, float16 weights (half the size; float16 compute on GPU delegates)", _TFLITE),
    ExportFormat("tflite_dynamic", "tflite", "dynamic", "model_dynamic.tflite", False,
                 "TFLite dynamic-range: int8 weights, activations quantized on the fly, float input/output", _TFLITE),
    ExportFormat("tflite_int8", "tflite", "int8", "model_int8.tflite", True,
                 "TFLite full-integer int8 (int8 input/output), post-training, calibrated on training inputs", _TFLITE),
    ExportFormat("tflite_qat", "tflite", "qat", "model_qat_int8.tflite", True,
                 "TFLite full-integer int8 after quantization-aware fine-tuning (tfmot) on training inputs", _TFLITE),
)}



def register_format(fmt: ExportFormat) -> ExportFormat:
    """Add a row to :data:`FORMATS` (``mer-keras export --format`` offers it from then on).

    Raises:
        ValueError: the name, or the (format, quant) pair, is taken; or ``exporter`` is not an
            :class:`~mer_keras.export.exporters.Exporter`.
    """
    if fmt.name in FORMATS or any((f.format, f.quant) == (fmt.format, fmt.quant) for f in FORMATS.values()):
        raise ValueError(f"export format {fmt.name!r} (--format {fmt.format}) is already registered")
    if not isinstance(fmt.exporter, Exporter):
        raise ValueError(f"export format {fmt.name!r}: exporter must be an Exporter, got {type(fmt.exporter).__name__}")
    FORMATS[fmt.name] = fmt
    return fmt


def format_names() -> tuple[str, ...]:
    """``--format`` choices, in table order."""
    return tuple(dict.fromkeys(f.format for f in FORMATS.values()))


def tflite_quants() -> tuple[str, ...]:
    """``--quant`` choices for ``--format tflite``."""
    return tuple(f.quant for f in FORMATS.values() if f.format == "tflite")


def find_format(fmt: str, quant: str | None = None) -> ExportFormat:
    """The table row of ``--format fmt --quant quant``.

    ``quant`` defaults to ``none`` for TFLite and must be omitted (or ``none``) for the others.

    Raises:
        OptionError: (a ValueError) no such combination (the message lists the valid ones).
    """
    if fmt == "tflite":
        quant = quant or "none"
    elif quant in (None, "none"):
        quant = None
    for f in FORMATS.values():
        if f.format == fmt and f.quant == quant:
            return f
    valid = ", ".join(f"--format {f.format}" + (f" --quant {f.quant}" if f.quant else "") for f in FORMATS.values())
    raise OptionError(f"no export format --format {fmt}" + (f" --quant {quant}" if quant else "") + f"; valid: {valid}")
