"""TFLite conversion (TensorFlow converter); inference is :class:`edge.model.TFLiteModel` (ai-edge-litert).

Post-training quantization follows the TensorFlow Lite guide ("Post-training quantization"):
``fp16`` float16 weights; ``dynamic`` int8 weights with activations quantized at run time;
``int8`` full integer, a representative dataset of training inputs calibrating activation ranges,
``TFLITE_BUILTINS_INT8`` and int8 input and output tensors (scale and zero point stored in the
model and in metadata.json). ``qat`` converts a quantization-aware model
(:func:`mer_keras.export.quantize.qat_fine_tune`) the same way as ``int8``.
"""

from __future__ import annotations

import numpy as np

from edge.model import TFLiteModel

__all__ = ["QUANTIZATIONS", "TFLiteModel", "convert", "convert_checked"]

#: ``--quant`` values (see :data:`mer_keras.export.formats.FORMATS`).
QUANTIZATIONS = ("none", "fp16", "dynamic", "int8", "qat")


def convert(model, quant: str = "none", representative: np.ndarray | None = None,
            calibration_samples: int = 200, allow_float: bool = False) -> bytes:
    """Convert a Keras model to a TFLite flatbuffer.

    Args:
        model: ``keras.Model`` with one (B, H, W, C) or (B, T, H, W, C) float32 input in [0, 255]
            and one output (use :func:`mer_keras.registry.inference_model` for multi-output models;
            for ``qat`` the model returned by QAT fine-tuning). Models with recurrent layers are
            converted with a static batch of 1.
        quant: one of :data:`QUANTIZATIONS`.
        representative: (N, ...) float32 training inputs, required for ``int8`` and ``qat``.
        allow_float: let ops with no int8 kernel stay in float (``int8``/``qat`` only).
    Returns:
        The ``.tflite`` bytes.
    Raises:
        ValueError: unknown quantization, or int8/qat without representative data.
    """
    from mer_keras._keras import keras
    from mer_keras.export.quantize import configure, converter_for

    if quant not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quant!r}; expected one of {QUANTIZATIONS}")
    # Recurrent layers (ConvLSTM2D) lower to a TFLite while loop only with static shapes.
    recurrent = any(isinstance(layer, keras.layers.RNN) for layer in model.layers)
    converter = converter_for(model, batch=1 if recurrent else None)
    configure(converter, quant, representative, calibration_samples, allow_float)
    return converter.convert()


def convert_checked(model, quant: str, representative: np.ndarray | None = None) -> tuple[bytes, dict]:
    """:func:`convert`, then report the ops left in float, so nothing is unquantized silently.

    For ``int8``/``qat`` the converter is first asked for integer-only kernels; if it refuses, the
    conversion is retried with float fallback and the refusal is recorded.

    Returns:
        (tflite bytes, {"float_ops": [...], "float_fallback": reason or None}).
    """
    from mer_keras.export.quantize import float_ops

    fallback = None
    try:
        blob = convert(model, quant, representative)
    except Exception as exc:  # the converter raises ConverterError and friends, not one type
        if quant not in ("int8", "qat"):
            raise
        fallback = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
        blob = convert(model, quant, representative, allow_float=True)
    info = {"float_ops": float_ops(blob) if quant in ("int8", "qat") else [], "float_fallback": fallback}
    return blob, info
