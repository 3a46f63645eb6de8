"""What the folded program can run: the layers it translates and, on this device, grouped convolutions.

:func:`mer_keras.train.multifold.supports_parallel_folds` asks both before folds train together;
:class:`~mer_keras.train.vectorized.network.FoldedNetwork` refuses a model with an untranslated layer.
"""

from __future__ import annotations

import numpy as np

from mer_keras._keras import keras, tf

#: Layer classes the folded program translates.
SUPPORTED = ("InputLayer", "Rescaling", "Conv2D", "Dense", "BatchNormalization", "MaxPooling2D", "AveragePooling2D",
             "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Flatten", "Concatenate", "Add", "Subtract", "Multiply",
             "Average", "Maximum", "Minimum", "Activation", "ReLU", "LeakyReLU", "Softmax", "Dropout", "ChannelSlice")


def unsupported_layers(model: keras.Model) -> list[str]:
    """``name (Class)`` of every layer of ``model`` the folded program cannot translate ([] if none)."""
    out = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind not in SUPPORTED:
            out.append(f"{layer.name} ({kind})")
        elif kind == "Conv2D" and (layer.data_format != "channels_last"):
            out.append(f"{layer.name} (Conv2D channels_first)")
        elif kind == "Concatenate" and layer.axis not in (-1, len(layer.output_shape) - 1):
            out.append(f"{layer.name} (Concatenate on axis {layer.axis})")
        elif kind == "BatchNormalization" and tuple(np.atleast_1d(layer.axis)) not in ((-1,), (len(layer.input_shape)
                                                                                              - 1,)):
            out.append(f"{layer.name} (BatchNormalization on axis {layer.axis})")
    return out


def grouped_convolution_works() -> bool:
    """Whether this TensorFlow computes a grouped convolution's gradients on this device.

    On CPU, TensorFlow has grouped-convolution kernels only through oneDNN: with
    ``TF_ENABLE_ONEDNN_OPTS=0`` the weight gradient fails. Probed once per process on a 1 x 4 x 4
    input of 2 groups.
    """
    if "grouped" not in _PROBE:
        try:
            x = tf.ones([1, 4, 4, 2])
            w = tf.Variable(tf.ones([3, 3, 1, 2]))
            with tf.GradientTape() as tape:
                y = tf.reduce_sum(tf.nn.convolution(x, w, padding="SAME"))
            _PROBE["grouped"] = tape.gradient(y, w) is not None
        except (tf.errors.OpError, ValueError, NotImplementedError):
            _PROBE["grouped"] = False
    return _PROBE["grouped"]


_PROBE: dict = {}
