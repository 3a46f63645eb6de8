"""LEARNet: dynamic-imaging network with accretion layers.

Source: M. Verma, S. K. Vipparthi, G. Singh, S. Murala, "LEARNet: Dynamic Imaging Network for
Micro Expression Recognition", IEEE Transactions on Image Processing 29 (2019/2020) 1618-1627,
Table VII, and the authors' released code.

Wiring (input 112 x 112 x 3 dynamic image):

* Conv-1: 3x3/16, stride 2, ReLU (112 -> 56).
* Four branches from Conv-1, each 1x1/16 -> 3x3/32 -> 5x5/64, every conv stride 2 with ReLU
  (56 -> 28 -> 14 -> 7), named Conv-2, Conv-3, Conv-4 in Table VII.
* Branches pair up (1 with 2, 3 with 4). The second branch of a pair is *accretive*: its 1x1
  output is added to the first branch's 1x1 output (accretion layer = Add then normalisation)
  and the sum feeds its 3x3 conv; its 3x3 output is added to the first branch's 3x3 output
  (Add then normalisation) and the sum feeds its 5x5 conv. The first branch of a pair is the
  *laterally coupled* one, the second the *decoupled accretive* one.
* Concatenate the four 5x5 outputs (7 x 7 x 256), normalise, Conv-5 3x3/256 stride 2 ReLU,
  flatten, FC 256 ReLU, Dropout 0.5, Dense softmax.

Variants (``variant=``):

* ``"paper"`` (default): Table VII. The layer after the concatenation is called LRN in the table
  but counted as 256 + 256 parameters, which is a BatchNormalization's gamma and beta, so it is
  BatchNormalization here. Conv-5 uses 'valid' padding so that its output is 3 x 3 x 256 and the
  FC layer has 2304 x 256 + 256 = 590,080 parameters, as the table lists. The table's layers add
  up to 1,405,824 (the paper's "1.4M").
* ``"released"``: the authors' code: the same layers with 'same' padding in Conv-5 (4 x 4 x 256),
  so FC has 4096 x 256 + 256 = 1,048,832 parameters.

Departures from the paper, and why:

* Accretion normalisation is BatchNormalization in both variants (as in the released code): the
  paper does not count parameters for it and TFLite has no integer kernel for LRN, which would
  block full-integer export. Each accretion BN adds 4 x C parameters (2 x C trainable), 384 in all
  (192 trainable).
* Keras counts BatchNormalization's moving mean and variance as (non-trainable) parameters; the
  table counts only gamma and beta. The classifier (256 x K + K) is not in the table's sum.
* An input scaling layer maps the [0, 255] dynamic image to [-1, 1] (no parameters).

Exact totals from ``model.count_params()`` (K classes):

* paper:    1,405,824 (table) + 512 (BN moving stats after concat) + 384 (accretion BNs)
  + 257 K  = 1,406,720 + 257 K  (1,407,491 for K = 3)
* released: 1,406,720 + 458,752 (the larger FC) + 257 K = 1,865,472 + 257 K (1,866,243 for K = 3)
"""

from __future__ import annotations

from mer_keras._keras import keras_layers
from mer_keras._keras import lazy_keras as keras  # TensorFlow loads when a model is built
from mer_keras.errors import OptionError
from mer_keras.layers import apply_conv, apply_input_scaling
from mer_keras.registry import register_model

layers = keras_layers

VARIANTS = ("paper", "released")


def apply_accretion(lateral, accretive, name: str):
    """Accretion layer: element-wise sum of the two branches' maps, then BatchNormalization.

    Args:
        lateral, accretive: (B, H, W, C) float32 tensors of the same shape.
    Returns:
        (B, H, W, C) float32 tensor.
    """
    x = layers.Add(name=f"{name}_add")([lateral, accretive])
    return layers.BatchNormalization(name=f"{name}_bn")(x)


def apply_branch_pair(stem, index: int, name: str):
    """One laterally coupled branch and its decoupled accretive partner.

    Args:
        stem: (B, 56, 56, 16) Conv-1 output for a 112 input.
        index: pair number (1 or 2); the branches are numbered 2*index-1 and 2*index.
    Returns:
        Two (B, 7, 7, 64) tensors: the 5x5 outputs of the lateral and the accretive branch.
    """
    a, b = 2 * index - 1, 2 * index
    a1 = apply_conv(stem, 16, 1, strides=2, name=f"{name}_conv2_b{a}")
    a2 = apply_conv(a1, 32, 3, strides=2, name=f"{name}_conv3_b{a}")
    a3 = apply_conv(a2, 64, 5, strides=2, name=f"{name}_conv4_b{a}")

    b1 = apply_conv(stem, 16, 1, strides=2, name=f"{name}_conv2_b{b}")
    b1 = apply_accretion(a1, b1, name=f"{name}_accretion2_b{b}")
    b2 = apply_conv(b1, 32, 3, strides=2, name=f"{name}_conv3_b{b}")
    b2 = apply_accretion(a2, b2, name=f"{name}_accretion3_b{b}")
    b3 = apply_conv(b2, 64, 5, strides=2, name=f"{name}_conv4_b{b}")
    return a3, b3


@register_model("learnet", representation="dynamic_image", input_shape=(112, 112, 3),
                 citation="Verma et al., IEEE TIP 2019", variants=VARIANTS)
def build_learnet(input_shape=(112, 112, 3), num_classes: int = 3, variant: str = "paper",
                  dropout: float = 0.5, name: str = "learnet"):
    """Build LEARNet.

    Args:
        input_shape: (H, W, C); 112 x 112 x 3 dynamic image in the paper. Inputs are float32 in
            [0, 255]. H and W must be at least 64 for the 'valid' Conv-5 of the paper variant.
        num_classes: softmax width K.
        variant: ``"paper"`` (Table VII) or ``"released"`` (authors' code); see module docstring.
        dropout: dropout rate before the classifier (0.5 in the paper).

    Returns:
        Functional ``keras.Model``: (B, H, W, C) float32 -> (B, K) float32 probabilities.

    Raises:
        OptionError: unknown variant or too small an input.
    """
    if variant not in VARIANTS:
        raise OptionError(f"unknown LEARNet variant {variant!r}; expected one of {VARIANTS}")
    if min(input_shape[:2]) < 64:
        raise OptionError(f"LEARNet needs inputs of at least 64 x 64, got {input_shape}")
    inputs = keras.Input(shape=input_shape, name="input")
    x = apply_input_scaling(inputs)
    stem = apply_conv(x, 16, 3, strides=2, name="conv1")
    b1, b2 = apply_branch_pair(stem, 1, name="pair1")
    b3, b4 = apply_branch_pair(stem, 2, name="pair2")
    x = layers.Concatenate(name="concat")([b1, b2, b3, b4])
    x = layers.BatchNormalization(name="norm5")(x)
    padding = "valid" if variant == "paper" else "same"
    x = apply_conv(x, 256, 3, strides=2, padding=padding, name="conv5")
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(256, activation="relu", name="fc6")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name=f"{name}_{variant}")
