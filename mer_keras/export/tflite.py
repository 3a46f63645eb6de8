"""TFLite conversion (TensorFlow converter); inference is :class:`edge.model.TFLiteModel` (ai-edge-litert).

Full-integer int8 follows the TensorFlow post-training quantization guide: a representative
dataset of training inputs calibrates activation ranges, ``TFLITE_BUILTINS_INT8`` only, and int8
input and output tensors (scale and zero point stored in the model and in metadata.json).
"""

from __future__ import annotations

import numpy as np

from edge.model import TFLiteModel

__all__ = ["QUANTIZATIONS", "TFLiteModel", "convert"]

QUANTIZATIONS = ("none", "int8")


def convert(model, quant: str = "none", representative: np.ndarray | None = None,
            calibration_samples: int = 200) -> bytes:
    """Convert a Keras model to a TFLite flatbuffer.

    Args:
        model: ``keras.Model`` with one (B, H, W, C) or (B, T, H, W, C) float32 input and one
            output (use :func:`mer_keras.registry.inference_model` for multi-output models). Models
            with recurrent layers are converted with a static batch of 1.
        quant: ``"none"`` (float32) or ``"int8"`` (full integer).
        representative: (N, H, W, C) float32 training inputs for int8 calibration.
    Returns:
        The ``.tflite`` bytes.
    Raises:
        ValueError: unknown quantization, or int8 without representative data.
    """
    from mer_keras._keras import keras, tf

    if quant not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quant!r}; expected one of {QUANTIZATIONS}")
    if any(isinstance(layer, keras.layers.RNN) for layer in model.layers):
        # Recurrent layers (ConvLSTM2D) lower to a TFLite while loop only with static shapes: a
        # batch-1 signature, the fixed T of the input, unrolled by the converter's loop lowering.
        fn = tf.function(lambda x: model(x, training=False))
        concrete = fn.get_concrete_function(tf.TensorSpec((1, *model.input_shape[1:]), tf.float32))
        converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], model)
    else:
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quant == "int8":
        if representative is None or len(representative) == 0:
            raise ValueError("int8 quantization needs representative training inputs")
        rng = np.random.default_rng(0)
        pick = rng.permutation(len(representative))[:calibration_samples]

        def gen():
            for i in pick:
                yield [representative[i:i + 1].astype(np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = gen
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()
