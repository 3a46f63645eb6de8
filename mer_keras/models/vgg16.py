"""VGG-16 on dynamic images (a baseline of the LEARNet paper's comparison).

K. Simonyan, A. Zisserman, "Very deep convolutional networks for large-scale image recognition",
ICLR 2015, configuration D: thirteen 3x3 convolutions in five blocks (64, 128, 256, 512, 512
filters) each followed by 2x2 max-pooling, then FC 4096, FC 4096 and the softmax. Layers carry
the names of ``keras.applications.VGG16`` (``block1_conv1`` ...), so its weights port by name;
the blocks are built inline rather than nesting that application model, because
tensorflow-model-optimization cannot quantize nested models and Grad-CAM needs the conv layers at
the top level. With 1,000 classes on 224 x 224 x 3 the model has
138,357,544 parameters, the paper's 138M (a test checks it).

Departures, and why:

* Trained from scratch (no weights are downloaded at run time); ``--init-from`` loads weights.
* Default input 112 x 112 x 3, the dynamic-image size LEARNet uses; FC-6 then sees a 3 x 3 x 512
  map (18.9M weights instead of 102.8M at 224).
* Dropout 0.5 after FC-6 and FC-7 as in the paper's training; a parameter-free Rescaling maps
  [0, 255] to [-1, 1].
* Adam at 1e-4 by default, not the 1e-3 the other models share: the paper trained with SGD
  (momentum 0.9, rate 1e-2) and initialised configuration D from a shallower net. Without batch
  normalisation and at Adam 1e-3 the network stays at chance (LOSO fold 1 on the synthetic
  default: training loss 1.1015 = ln 3, training accuracy 0.27 after 80 epochs); at 1e-4 it fits
  (training accuracy 0.91 after 12 epochs). ``--lr`` overrides it (docs/MODELS.md).
"""

from __future__ import annotations

from mer_keras._keras import keras_layers
from mer_keras._keras import lazy_keras as keras  # TensorFlow loads when a model is built
from mer_keras.layers import apply_input_scaling
from mer_keras.registry import register_model

layers = keras_layers

#: (convolutions, filters) per block, configuration D.
VGG16_BLOCKS = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))


@register_model("vgg16", representation="dynamic_image", input_shape=(112, 112, 3),
                citation="Simonyan & Zisserman, ICLR 2015 (LEARNet baseline)",
                lr=1e-4)  # at Adam 1e-3 it stays at chance (no batch normalisation; module docstring)
def build_vgg16(input_shape=(112, 112, 3), num_classes: int = 3, dropout: float = 0.5, name: str = "vgg16"):
    """Build VGG-16.

    Args:
        input_shape: (H, W, 3), H and W >= 32. num_classes: K. dropout: rate after FC-6/FC-7.
    Returns:
        Functional ``keras.Model``: (B, H, W, 3) float32 in [0, 255] -> (B, K) float32 probabilities.
    """
    inputs = keras.Input(shape=input_shape, name="input")
    x = apply_input_scaling(inputs)
    for block, (convs, filters) in enumerate(VGG16_BLOCKS, start=1):
        for k in range(1, convs + 1):
            x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"block{block}_conv{k}")(x)
        x = layers.MaxPooling2D(2, strides=2, name=f"block{block}_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    for k in (6, 7):
        x = layers.Dense(4096, activation="relu", name=f"fc{k}")(x)
        x = layers.Dropout(dropout, name=f"fc{k}_dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)
