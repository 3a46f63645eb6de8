"""TFLite conversion: the TensorFlow converter set up for each quantization, and a check of what it produced.

Post-training quantization follows the TensorFlow Lite guide ("Post-training quantization"):
``fp16`` float16 weights; ``dynamic`` int8 weights with activations quantized at run time;
``int8`` full integer, a representative dataset of training inputs calibrating activation ranges,
``TFLITE_BUILTINS_INT8`` and int8 input and output tensors (scale and zero point stored in the
model and in metadata.json). ``qat`` converts a quantization-aware model
(:func:`mer_keras.export.quantize.qat_fine_tune`) the same way as ``int8``.

Running a ``.tflite`` model is :class:`mer_keras.runtime.tflite.TFLiteModel` (ai-edge-litert, no
TensorFlow), re-exported here. TensorFlow is imported when a conversion starts, not with this module.
"""

from __future__ import annotations

import numpy as np

__all__ = ["QUANTIZATIONS", "configure", "convert", "convert_checked", "converter_for",
           "float_ops", "representative_gen"]

#: ``--quant`` values (see :data:`mer_keras.export.formats.FORMATS`).
QUANTIZATIONS = ("none", "fp16", "dynamic", "int8", "qat")


def representative_gen(x: np.ndarray, samples: int = 200, seed: int = 0):
    """Generator factory over up to ``samples`` random rows of ``x`` (batch 1), for calibration.

    Args:
        x: (N, ...) float32 inputs in [0, 255]. samples: rows drawn (all of them when N is smaller).
        seed: the permutation's seed (``numpy.random.default_rng``), so calibration is reproducible.
    Returns:
        A callable returning a generator of ``[x[i:i + 1]]`` lists, (1, ...) float32 each.
    """
    pick = np.random.default_rng(seed).permutation(len(x))[:samples]

    def gen():
        for i in pick:
            yield [np.asarray(x[i:i + 1], np.float32)]

    return gen


def converter_for(model, batch: int | None = None):
    """A ``tf.lite.TFLiteConverter`` for a Keras model, with a static batch when ``batch`` is given.

    Args:
        model: ``keras.Model`` with one float32 input. batch: None for a dynamic batch (the Keras
            model's signature), else the fixed batch size of the converted model.
    Returns:
        The converter, not yet configured (see :func:`configure`).
    """
    from mer_keras._keras import tf

    if batch is not None:
        fn = tf.function(lambda inp: model(inp, training=False))
        concrete = fn.get_concrete_function(tf.TensorSpec((batch, *model.input_shape[1:]), tf.float32))
        return tf.lite.TFLiteConverter.from_concrete_functions([concrete], model)
    return tf.lite.TFLiteConverter.from_keras_model(model)


def configure(converter, quant: str, representative: np.ndarray | None = None,
              calibration_samples: int = 200, allow_float: bool = False) -> None:
    """Set a converter up for one of :data:`QUANTIZATIONS` (in place).

    ``none``: float32. ``fp16``: float16 weights (float32 compute on CPU, fp16 on GPU delegates).
    ``dynamic``: int8 weights, activations quantized on the fly. ``int8`` and ``qat``: full integer
    with int8 input and output, calibrated on ``representative`` (for ``qat`` only the layers the
    fake-quant did not cover need it); ``allow_float`` lets ops with no int8 kernel stay float.

    Args:
        representative: (N, ...) float32 training inputs in [0, 255]; up to
            ``calibration_samples`` of them calibrate the activation ranges.
    Raises:
        ValueError: int8/qat without representative inputs.
    """
    from mer_keras._keras import tf

    if quant == "none":
        return
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quant == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    elif quant in ("int8", "qat"):
        if representative is None or len(representative) == 0:
            raise ValueError(f"{quant} quantization needs representative training inputs")
        converter.representative_dataset = representative_gen(representative, calibration_samples)
        ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if allow_float:
            ops.append(tf.lite.OpsSet.TFLITE_BUILTINS)
        converter.target_spec.supported_ops = ops
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8


def convert(model, quant: str = "none", representative: np.ndarray | None = None,
            calibration_samples: int = 200, allow_float: bool = False) -> bytes:
    """Convert a Keras model to a TFLite flatbuffer.

    Args:
        model: ``keras.Model`` with one (B, H, W, C) or (B, T, H, W, C) float32 input in [0, 255]
            and one output (use :func:`mer_keras.factory.inference_model` for multi-output models;
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
    from mer_keras.native import quiet_native_stderr

    if quant not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quant!r}; expected one of {QUANTIZATIONS}")
    # Recurrent layers (ConvLSTM2D) lower to a TFLite while loop only with static shapes.
    recurrent = any(isinstance(layer, keras.layers.RNN) for layer in model.layers)
    converter = converter_for(model, batch=1 if recurrent else None)
    configure(converter, quant, representative, calibration_samples, allow_float)
    import warnings

    with quiet_native_stderr(), warnings.catch_warnings():  # the converter's internals unless --verbose
        # int8 models take raw [0, 255] inputs whose scale is set from the representative data
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
        return converter.convert()


def float_ops(tflite_bytes: bytes) -> list[str]:
    """Ops of a TFLite model that compute in float32 (besides the QUANTIZE/DEQUANTIZE at its edges).

    Returns:
        Sorted op names (with counts, e.g. ``"FULLY_CONNECTED x2"``); empty for a full-integer model.
    Raises:
        ValueError: the bytes are not a TFLite model.
    """
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=bytes(tflite_bytes))
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    counts: dict[str, int] = {}
    for op in interp._get_ops_details():
        if op["op_name"] in ("QUANTIZE", "DEQUANTIZE"):
            continue
        outs = [tensors[i] for i in op["outputs"] if i in tensors]
        if any(t["dtype"] == np.float32 for t in outs):
            counts[op["op_name"]] = counts.get(op["op_name"], 0) + 1
    return sorted(f"{k} x{v}" if v > 1 else k for k, v in counts.items())


def convert_checked(model, quant: str, representative: np.ndarray | None = None) -> tuple[bytes, dict]:
    """:func:`convert`, then report the ops left in float, so nothing is unquantized silently.

    For ``int8``/``qat`` the converter is first asked for integer-only kernels; if it refuses, the
    conversion is retried with float fallback and the refusal is recorded.

    Returns:
        (tflite bytes, {"float_ops": [...], "float_fallback": reason or None}).
    Raises:
        ValueError: as :func:`convert`; converter errors of other quantizations propagate.
    """
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
