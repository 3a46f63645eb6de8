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

Variants (``variant=``), all but ``paper`` not from the paper, for the accuracy search
(docs/REAL_DATA.md):

* ``paper``: the above.
* ``wide``: a width multiplier of 2 (6, 10 and 16 filters): 896 + 801 K parameters, 3,299 for 3
  classes.
* ``deep``: a depth multiplier of 2, a second 3x3 'same' convolution of the same width (ReLU)
  in each stream before its pooling: 448 + 84 + 230 + 584 + 401 K parameters, 2,549 for 3 classes.
* ``dropout``: dropout 0.5 on the 400 flattened features before the softmax layer (1,651
  parameters, as ``paper``).

Departures from the paper, and why:

* The paper's exact layer table is a figure we could not read; the layers above follow its text
  and the issue's specification, and the count above is computed, not checked against a
  published figure.
* A parameter-free input Rescaling maps the [0, 255] flow image to [-1, 1] (as every model here).
"""

from __future__ import annotations

from mer_keras._keras import keras_layers
from mer_keras._keras import lazy_keras as keras  # TensorFlow loads when a model is built
from mer_keras.layers import apply_conv, apply_input_scaling
from mer_keras.registry import register_model

layers = keras_layers

STREAM_FILTERS = (3, 5, 8)
#: Each variant's width multiplier, convolutions per stream and dropout rate before the softmax.
VARIANTS = {"paper": dict(width=1, depth=1, dropout=0.0), "wide": dict(width=2, depth=1, dropout=0.0),
            "deep": dict(width=1, depth=2, dropout=0.0), "dropout": dict(width=1, depth=1, dropout=0.5)}


def apply_stream(x, filters: int, name: str, depth: int = 1):
    """One STSTNet stream: ``depth`` 3x3 convs (ReLU), 3x3/3 max-pool, 2x2/2 average-pool.

    Args:
        x: (B, 28, 28, 3) float32. depth: convolutions before the pooling (1 in the paper); the
            first is named ``<name>_conv`` (as in the paper's layout), the others ``<name>_conv<k>``.
    Returns:
        (B, 5, 5, filters) float32.
    """
    x = apply_conv(x, filters, 3, name=f"{name}_conv")
    for k in range(2, depth + 1):
        x = apply_conv(x, filters, 3, name=f"{name}_conv{k}")
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
        variant: ``"paper"``, ``"wide"``, ``"deep"`` or ``"dropout"`` (see the module docstring).
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
    spec = VARIANTS[variant]
    streams = [apply_stream(x, f * spec["width"], name=f"stream{k + 1}", depth=spec["depth"])
               for k, f in enumerate(STREAM_FILTERS)]
    x = layers.Concatenate(name="concat")(streams)
    x = layers.Flatten(name="flatten")(x)
    if spec["dropout"]:
        x = layers.Dropout(spec["dropout"], name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)
