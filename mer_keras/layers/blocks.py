"""Plain-function blocks: ``apply_<block>(x, ..., name) -> tensor`` with deterministic layer names."""

from __future__ import annotations

from mer_keras._keras import keras_layers

layers = keras_layers


def apply_input_scaling(x, name: str = "input_scaling"):
    """Map raw network input in [0, 255] (float32) to [-1, 1].

    Every model takes [0, 255] float32 input so that exported models and the edge runner feed
    the representation as built, with no external normalisation to reproduce. The affine map is a
    stock ``Rescaling`` layer, which TFLite folds into MUL/ADD and quantizes.
    """
    return layers.Rescaling(1.0 / 127.5, offset=-1.0, name=name)(x)


def apply_conv(x, filters: int, kernel_size: int, strides: int = 1, padding: str = "same",
               activation: str | None = "relu", name: str = "conv"):
    """Conv2D (with bias) followed by an optional activation fused into the layer.

    Args:
        x: (B, H, W, C) float32 tensor.
    Returns:
        (B, H', W', filters) float32 tensor; H' = ceil(H / strides) for 'same' padding.
    """
    return layers.Conv2D(filters, kernel_size, strides=strides, padding=padding,
                         activation=activation, name=name)(x)
