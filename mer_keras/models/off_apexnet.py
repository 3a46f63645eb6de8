"""OFF-ApexNet: two-stream CNN on the onset -> apex optical flow (a baseline).

Y. S. Gan, S.-T. Liong, W.-C. Yau, Y.-C. Huang, L.-K. Tan, "OFF-ApexNet on micro-expression
recognition system", Signal Processing: Image Communication 74, 2019. Input: the horizontal (u)
and vertical (v) onset -> apex flow at 28 x 28, one stream each.

Wiring per stream: 5x5 'same' convolution with 6 filters, 2x2/2 max-pooling (28 -> 14), 5x5
'same' convolution with 16 filters, 2x2/2 max-pooling (14 -> 7); the two 7 x 7 x 16 maps are
flattened and concatenated (1,568), then FC 1024, FC 1024 and the softmax.

Parameters (``model.count_params()``): 2 x (156 + 2,416) + 1,606,656 + 1,049,600 + 1,025 K =
2,664,475 for 3 classes (2,666,525 for 5), the paper's "about 2.66M"; a test checks it.

Departures from the paper, and why:

* The model takes the project's (u, v, strain) flow image and slices u and v out of it with
  :class:`~mer_keras.layers.custom.ChannelSlice` (the strain channel is unused), so every flow
  model shares one cached representation.
* ReLU after each convolution and FC layer, dropout 0.5 after each FC layer (configurable with
  ``dropout``); the paper's text we could read does not state activations, a public
  re-implementation uses dropout 0.5.
* A parameter-free input Rescaling maps [0, 255] to [-1, 1] (as every model here).

Variants (``variant=``): ``paper`` (the above) and ``narrow``, not from the paper: fully connected
layers of 256 instead of 1,024 units (a width multiplier of 1/4 on the layers that hold 99.8 % of
the parameters): 2 x 2,572 + 401,664 + 65,792 + 257 K = 473,371 parameters for 3 classes, for the
accuracy search (docs/REAL_DATA.md).
"""

from __future__ import annotations

from mer_keras._keras import keras_layers
from mer_keras._keras import lazy_keras as keras  # TensorFlow loads when a model is built
from mer_keras.layers import apply_conv, apply_input_scaling
from mer_keras.registry import register_model

layers = keras_layers

#: Units of each fully connected layer, per variant.
VARIANTS = {"paper": 1024, "narrow": 256}


def apply_flow_stream(x, name: str):
    """One OFF-ApexNet stream: (B, 28, 28, 1) -> (B, 1568 / 2) flattened features."""
    x = apply_conv(x, 6, 5, name=f"{name}_conv1")
    x = layers.MaxPooling2D(2, name=f"{name}_pool1")(x)
    x = apply_conv(x, 16, 5, name=f"{name}_conv2")
    x = layers.MaxPooling2D(2, name=f"{name}_pool2")(x)
    return layers.Flatten(name=f"{name}_flatten")(x)


@register_model("off_apexnet", representation="flow", input_shape=(28, 28, 3),
                citation="Gan et al., Signal Process. Image Commun. 2019", explain_layer="u_stream_pool2",
                variants=tuple(VARIANTS))
def build_off_apexnet(input_shape=(28, 28, 3), num_classes: int = 3, dropout: float = 0.5,
                      name: str = "off_apexnet", variant: str = "paper"):
    """Build OFF-ApexNet.

    Args:
        input_shape: (H, W, C>=2) flow image (u, v[, strain]) as float32 in [0, 255]; 28 x 28 in the paper.
        num_classes: softmax width K. dropout: rate after each FC layer, in [0, 1).
        variant: ``"paper"`` (FC 1,024) or ``"narrow"`` (FC 256; see the module docstring).
    Returns:
        Functional ``keras.Model``: (B, H, W, C) float32 -> (B, K) float32 probabilities.
    Raises:
        OptionError: an unknown variant.
    """
    from mer_keras.layers.custom import ChannelSlice  # Keras classes: TensorFlow
    if variant not in VARIANTS:
        from mer_keras.errors import OptionError

        raise OptionError(f"unknown OFF-ApexNet variant {variant!r}; expected one of {tuple(VARIANTS)}")
    inputs = keras.Input(shape=input_shape, name="input")
    x = apply_input_scaling(inputs)
    u = apply_flow_stream(ChannelSlice(0, 1, name="u")(x), "u_stream")
    v = apply_flow_stream(ChannelSlice(1, 2, name="v")(x), "v_stream")
    x = layers.Concatenate(name="concat")([u, v])
    for k in (1, 2):
        x = layers.Dense(VARIANTS[variant], activation="relu", name=f"fc{k}")(x)
        x = layers.Dropout(dropout, name=f"fc{k}_dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)
