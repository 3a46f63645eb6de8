"""Micro-attention ResNet-10 on the apex frame.

C. Wang, M. Peng, T. Bi, T. Chen, "Micro-attention for micro-expression recognition",
Neurocomputing 410, 2020 (arXiv 1811.02360). Input: the aligned apex frame, grayscale, 224 x 224.

Network: a pre-activation ResNet-10 (He et al., ECCV 2016): 7x7/2 convolution with 64 filters and
3x3/2 max-pooling, then one basic block per stage with 64/128/256/512 filters (stages 2-4 start
with stride 2 and a 1x1 stride-2 projection shortcut), final BN-ReLU, global average pooling and
the softmax. A pre-activation block is ``c1 = conv3x3_s(relu(bn(x)))``,
``c2 = conv3x3(relu(bn(c1)))``, ``y = s + c2`` with ``s`` the block input or its projection.

Micro-attention unit (one per block, after the residual sum): ``z = conv1x1([s, c1, c2])`` back to
C channels without bias, a fixed (non-trainable) channel mean to one map, ``m = sigmoid(mean(z))``
and the block output ``y * (1 + m)``: the residual path is kept and the attended regions are
amplified. The unit adds 3C^2 trainable weights per block (12,288 ... 786,432): 1,044,480 in all,
plus C fixed ones (the mean); 5,948,675 parameters against 4,903,235 without it (+21 %), more
than the paper's "without adding noticeable parameters" suggests for this layout.

Transfer learning (the paper pre-trains on larger expression data, then fine-tunes on the
micro-expression database): ``mer-keras train --init-from RUN_OR_MODEL [--freeze-until LAYER]``
copies every layer whose name and weight shapes match (see
:func:`mer_keras.train.transfer.initialise_from`).

Departures from the paper, and why:

* We could not read the paper's full text; the layout and the unit follow the issue's
  specification and the abstract ("without adding noticeable parameters"). A public
  re-implementation normalises the attention map with a spatial softmax instead of a sigmoid;
  here the sigmoid is used (``mask="sigmoid"``), ``mask="softmax"`` is not offered.
* No pre-trained weights are shipped or downloaded; without ``--init-from`` it trains from scratch.
* A parameter-free Rescaling maps [0, 255] to [-1, 1].
"""

from __future__ import annotations

from mer_keras._keras import keras_layers
from mer_keras._keras import lazy_keras as keras  # TensorFlow loads when a model is built
from mer_keras.layers import apply_input_scaling
from mer_keras.registry import register_model

layers = keras_layers

WIDTHS = (64, 128, 256, 512)


def apply_bn_relu(x, name: str):
    """BatchNorm (eps 1e-5) -> ReLU, shape unchanged."""
    return layers.ReLU(name=f"{name}_relu")(layers.BatchNormalization(epsilon=1e-5, name=f"{name}_bn")(x))


def apply_micro_attention(y, parts, name: str):
    """Micro-attention unit: y * (1 + sigmoid(channel_mean(conv1x1(concat(parts))))).

    Args:
        y: (B, H, W, C) residual sum. parts: tensors of shape (B, H, W, *) (shortcut, c1, c2).
    Returns:
        (B, H, W, C) float32. Trainable parameters: sum(channels of parts) * C.
    """
    c = y.shape[-1]
    z = layers.Concatenate(name=f"{name}_concat")(parts)
    z = layers.Conv2D(c, 1, use_bias=False, name=f"{name}_conv")(z)
    z = layers.Conv2D(1, 1, use_bias=False, trainable=False, kernel_initializer=keras.initializers.Constant(1.0 / c),
                      name=f"{name}_channel_mean")(z)
    mask = layers.Activation("sigmoid", name=f"{name}_mask")(z)
    attended = layers.Multiply(name=f"{name}_apply")([y, mask])
    return layers.Add(name=f"{name}_out")([y, attended])


def apply_preact_block(x, filters: int, strides: int, name: str, attention: bool = True):
    """Pre-activation basic block with a micro-attention unit; (B, H, W, C) -> (B, H/s, W/s, filters)."""
    pre = apply_bn_relu(x, f"{name}_pre")
    if strides != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=strides, use_bias=False, name=f"{name}_projection")(pre)
    else:
        shortcut = x
    c1 = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False, name=f"{name}_conv1")(pre)
    c2 = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(
        apply_bn_relu(c1, f"{name}_mid"))
    y = layers.Add(name=f"{name}_add")([shortcut, c2])
    return apply_micro_attention(y, [shortcut, c1, c2], f"{name}_attention") if attention else y


@register_model("micro_attention", representation="apex", input_shape=(224, 224, 1),
                citation="Wang et al., Neurocomputing 2020",
                recipes={"paper": dict(augment=False, shift=8,
                                       source="the official prototxt: random 224 crops of a 240 resize, no "
                                              "mirroring; here the 224 input shifted by up to 8 px, edges repeated")})
def build_micro_attention(input_shape=(224, 224, 1), num_classes: int = 3, attention: bool = True,
                          name: str = "micro_attention"):
    """Build the micro-attention pre-activation ResNet-10.

    Args:
        input_shape: (H, W, C) apex frame, C = 1 (grayscale, default) or 3, float32 in [0, 255].
        num_classes: K. attention: False builds the plain ResNet-10 (the ablation).
    Returns:
        Functional ``keras.Model``: (B, H, W, C) float32 -> (B, K) float32 probabilities.
    """
    inputs = keras.Input(shape=input_shape, name="input")
    x = apply_input_scaling(inputs)
    x = layers.Conv2D(64, 7, strides=2, padding="same", use_bias=False, name="stem_conv")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    for stage, filters in enumerate(WIDTHS, start=1):
        x = apply_preact_block(x, filters, 1 if stage == 1 else 2, f"stage{stage}", attention)
    x = apply_bn_relu(x, "final")
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)
