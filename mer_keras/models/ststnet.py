"""STSTNet: Shallow Triple Stream Three-dimensional CNN (a baseline).

S.-T. Liong, Y. S. Gan, J. See, H.-Q. Khor, Y.-C. Huang, "Shallow Triple Stream Three-dimensional
CNN (STSTNet) for Micro-expression Recognition", IEEE FG 2019 (arXiv 1902.03634). Input: the
28 x 28 x 3 onset -> apex optical-flow image (u, v, optical strain).

Wiring: three streams on the same input, each a 3x3 'same' convolution with 3, 5 and 8 filters
and ReLU, then 3x3 max-pooling with stride 3 ('same': 28 -> 10), then 2x2 average pooling with
stride 2 (10 -> 5); the streams are concatenated (5 x 5 x 16), flattened (400) and classified by
one dense softmax layer.

Parameters (``model.count_params()``, K classes): 84 + 140 + 224 (the three convolutions) +
401 K (dense) = 448 + 401 K, i.e. 1,651 for 3 classes.

Variants (``variant=``): ``paper`` (the above) and ``wide`` (a width multiplier of 2: 6, 10 and
16 filters, 896 + 801 K parameters, 3,299 for 3 classes), not from the paper: a larger student of
the same shape for the accuracy search (docs/REAL_DATA.md).

Departures from the paper, and why:

* The paper's exact layer table is a figure we could not read; the layers above follow its text
  and the issue's specification, and the count above is computed, not checked against a
  published figure.
* A parameter-free input Rescaling maps the [0, 255] flow image to [-1, 1] (as every model here).
"""

from __future__ import annotations

from mer_keras._keras import keras
from mer_keras.layers import apply_conv, apply_input_scaling
from mer_keras.registry import register_model

layers = keras.layers

STREAM_FILTERS = (3, 5, 8)
#: Width multiplier of each variant.
VARIANTS = {"paper": 1, "wide": 2}


def apply_stream(x, filters: int, name: str):
    """One STSTNet stream: 3x3 conv (ReLU), 3x3/3 max-pool, 2x2/2 average-pool.

    Args:
        x: (B, 28, 28, 3) float32.
    Returns:
        (B, 5, 5, filters) float32.
    """
    x = apply_conv(x, filters, 3, name=f"{name}_conv")
    x = layers.MaxPooling2D(3, strides=3, padding="same", name=f"{name}_maxpool")(x)
    return layers.AveragePooling2D(2, strides=2, name=f"{name}_avgpool")(x)


@register_model("ststnet", representation="flow", input_shape=(28, 28, 3),
                citation="Liong et al., IEEE FG 2019", explain_layer="concat",
                recipes={"paper": dict(lr=5e-5, epochs=500, batch_size=256, augment=False, class_weight=False,
                                       source="the STSTNet paper (epochs) and its official code")},
                variants=tuple(VARIANTS))
def build_ststnet(input_shape=(28, 28, 3), num_classes: int = 3, name: str = "ststnet", variant: str = "paper"):
    """Build STSTNet.

    Args:
        input_shape: (H, W, 3) flow image (u, v, strain) as float32 in [0, 255]; 28 x 28 in the paper.
        num_classes: softmax width K.
        variant: ``"paper"`` or ``"wide"`` (twice the filters; see the module docstring).
    Returns:
        Functional ``keras.Model``: (B, H, W, 3) float32 -> (B, K) float32 probabilities.
    Raises:
        OptionError: an unknown variant.
    """
    if variant not in VARIANTS:
        from mer_keras.errors import OptionError

        raise OptionError(f"unknown STSTNet variant {variant!r}; expected one of {tuple(VARIANTS)}")
    inputs = keras.Input(shape=input_shape, name="input")
    x = apply_input_scaling(inputs)
    streams = [apply_stream(x, f * VARIANTS[variant], name=f"stream{k + 1}") for k, f in enumerate(STREAM_FILTERS)]
    x = layers.Concatenate(name="concat")(streams)
    x = layers.Flatten(name="flatten")(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)
