"""Small reusable blocks shared by several architectures."""

from mer_keras.layers.blocks import apply_conv, apply_input_scaling

__all__ = ["apply_conv", "apply_input_scaling"]
