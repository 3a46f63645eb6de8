"""ResNet-18 and ResNet-34 on dynamic images (baselines of the LEARNet paper's comparison).

K. He, X. Zhang, S. Ren, J. Sun, "Deep residual learning for image recognition", CVPR 2016,
Table 1: a 7x7/2 convolution with 64 filters, 3x3/2 max-pooling, four stages of basic blocks (two
3x3 convolutions, batch normalisation, identity shortcuts; a 1x1 stride-2 projection with batch
normalisation when the shape changes, option B) with 64/128/256/512 filters and [2, 2, 2, 2]
(ResNet-18) or [3, 4, 6, 3] (ResNet-34) blocks, global average pooling and a softmax layer.
Verma et al. (LEARNet, IEEE TIP 2019) compare against these networks on dynamic images.

Parameters: convolutions without bias as in the reference implementation; with 1,000 classes
on 224 x 224 x 3 the trainable counts are 11,689,512 (ResNet-18) and 21,797,672 (ResNet-34), the
torchvision figures; a test checks both. Keras also counts the batch-norm moving statistics
(non-trainable).

Departures, and why:

* Trained from scratch: no ImageNet weights are shipped and nothing is downloaded at run time.
  ``--init-from`` loads any compatible Keras weights (matching layer names and shapes).
* Default input 112 x 112 x 3, the dynamic-image size LEARNet uses (same cached inputs).
* A parameter-free input Rescaling maps [0, 255] to [-1, 1].
"""

from __future__ import annotations

from mer_keras._keras import keras_layers
from mer_keras._keras import lazy_keras as keras  # TensorFlow loads when a model is built
from mer_keras.layers import apply_input_scaling
from mer_keras.registry import register_model

layers = keras_layers

#: Blocks per stage (He et al. 2016, Table 1).
DEPTHS = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}
WIDTHS = (64, 128, 256, 512)


def apply_conv_bn(x, filters: int, kernel_size: int, strides: int, name: str, relu: bool = True):
    """Conv2D ('same', no bias) -> BatchNorm (eps 1e-5) [-> ReLU]. (B, H, W, C) -> (B, H/s, W/s, filters)."""
    x = layers.Conv2D(filters, kernel_size, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(epsilon=1e-5, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x) if relu else x


def apply_basic_block(x, filters: int, strides: int, name: str):
    """Post-activation basic block: relu(bn(conv(relu(bn(conv x)))) + shortcut)."""
    y = apply_conv_bn(x, filters, 3, strides, f"{name}_1")
    y = apply_conv_bn(y, filters, 3, 1, f"{name}_2", relu=False)
    if strides != 1 or x.shape[-1] != filters:
        x = apply_conv_bn(x, filters, 1, strides, f"{name}_shortcut", relu=False)
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([x, y]))


def build_resnet(input_shape, num_classes: int, depths, name: str):
    """ResNet with basic blocks; (B, H, W, C) float32 [0, 255] -> (B, K) float32 probabilities."""
    inputs = keras.Input(shape=input_shape, name="input")
    x = apply_input_scaling(inputs)
    x = apply_conv_bn(x, 64, 7, 2, "stem")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    for stage, (blocks, filters) in enumerate(zip(depths, WIDTHS), start=1):
        for b in range(blocks):
            x = apply_basic_block(x, filters, 2 if (b == 0 and stage > 1) else 1, f"stage{stage}_block{b + 1}")
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)


@register_model("resnet18", representation="dynamic_image", input_shape=(112, 112, 3),
                citation="He et al., CVPR 2016 (LEARNet baseline)")
def build_resnet18(input_shape=(112, 112, 3), num_classes: int = 3, name: str = "resnet18"):
    """ResNet-18 (see the module docstring). Input (B, H, W, 3) float32 in [0, 255]."""
    return build_resnet(input_shape, num_classes, DEPTHS["resnet18"], name)


@register_model("resnet34", representation="dynamic_image", input_shape=(112, 112, 3),
                citation="He et al., CVPR 2016 (LEARNet baseline)")
def build_resnet34(input_shape=(112, 112, 3), num_classes: int = 3, name: str = "resnet34"):
    """ResNet-34 (see the module docstring). Input (B, H, W, 3) float32 in [0, 255]."""
    return build_resnet(input_shape, num_classes, DEPTHS["resnet34"], name)
