"""Feature Refinement (FR): expression-specific feature learning and fusion.

L. Zhou, Q. Mao, X. Huang, F. Zhang, Z. Zhang, "Feature refinement: an expression-specific
feature learning and fusion method for micro-expression recognition", Pattern Recognition 122,
2022. Input: the onset -> apex optical flow image (u, v, optical strain), 28 x 28.

Three modules:

1. Expression-shared features: two inception blocks (parallel 1x1; 1x1 -> 3x3; 1x1 -> 5x5;
   3x3/1 max-pool -> 1x1; 'same', ReLU; concatenated, then 2x2 max-pooling) with 6 and 16
   filters per path (the widths of the authors' Dual-Inception, FG 2019): 28x28x3 -> 7x7x64.
2. Expression proposal: one attention branch per class k. A spatial attention map
   ``a_k = sigmoid(conv1x1(relu(conv3x3(F))))`` (B, 7, 7, 1) re-weights the shared features,
   ``e_k = relu(dense(flatten(F * a_k)))`` is the expression-specific feature (``feature_dim``)
   and ``s_k = sigmoid(dense(e_k))`` its proposal score. The K scores form the ``proposal``
   output, trained by the proposal loss: binary cross-entropy against the one-hot class, so each
   branch separates its own expression from the rest.
3. Classification: the K expression-specific features are concatenated (fusion) and classified by
   a softmax layer (``predictions``).

Variants (``--variant``):

* ``one_stream`` (the default): module 1 is one inception stream on the three channels (u, v,
  optical strain) of the project's flow image: 28x28x3 -> 7x7x64.
* ``paper``: module 1 as in the authors' Dual-Inception code (Zhou et al., FG 2019 MEGC, the base
  the FR paper builds on): two separate inception streams, one on the horizontal flow u and one on
  the vertical flow v (sliced from the flow image; strain unused), each 28x28x1 -> 7x7x64,
  concatenated along channels into the 7x7x128 expression-shared features.

Loss = cross-entropy + lambda * proposal loss; lambda (``proposal`` in the registry's auxiliary
losses) defaults to 1.0 and is set with ``mer-keras train --aux-weight proposal=0.5``. Attention
uses stock layers only (Conv2D, Multiply); no Lambda layer.

Departures, and why: we could read only the abstract. The layer widths, the attention branch,
fusion by concatenation and lambda = 1 are our choices where the text we had is silent
(documented above, configurable with ``filters``, ``feature_dim``, ``attention_filters`` and the
loss weight). Which variant is the default, and why, is in docs/MODELS.md (measured on the
MEGC2019 composite). A parameter-free Rescaling maps [0, 255] to [-1, 1].
"""

from __future__ import annotations

from mer_keras._keras import keras_layers
from mer_keras._keras import lazy_keras as keras  # TensorFlow loads when a model is built
from mer_keras.layers import apply_conv, apply_input_scaling
from mer_keras.registry import register_model

layers = keras_layers

#: ``--variant`` names (first: the default).
VARIANTS = ("one_stream", "paper")


def apply_inception(x, filters: int, name: str):
    """Inception block with four paths of ``filters`` each, then 2x2 max-pooling.

    (B, H, W, C) -> (B, H/2, W/2, 4 * filters).
    """
    p1 = apply_conv(x, filters, 1, name=f"{name}_1x1")
    p2 = apply_conv(apply_conv(x, filters, 1, name=f"{name}_3x3_reduce"), filters, 3, name=f"{name}_3x3")
    p3 = apply_conv(apply_conv(x, filters, 1, name=f"{name}_5x5_reduce"), filters, 5, name=f"{name}_5x5")
    p4 = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    p4 = apply_conv(p4, filters, 1, name=f"{name}_pool_proj")
    x = layers.Concatenate(name=f"{name}_concat")([p1, p2, p3, p4])
    return layers.MaxPooling2D(2, name=f"{name}_downsample")(x)


def apply_expression_branch(shared, k: int, feature_dim: int, attention_filters: int):
    """Proposal branch of class k: (B, h, w, C) -> ((B, feature_dim) feature, (B, 1) proposal score)."""
    name = f"expression{k}"
    a = apply_conv(shared, attention_filters, 3, name=f"{name}_attention_conv")
    a = layers.Conv2D(1, 1, activation="sigmoid", name=f"{name}_attention")(a)
    refined = layers.Multiply(name=f"{name}_refine")([shared, a])
    e = layers.Dense(feature_dim, activation="relu", name=f"{name}_feature")(
        layers.Flatten(name=f"{name}_flatten")(refined))
    score = layers.Dense(1, activation="sigmoid", name=f"{name}_proposal")(e)
    return e, score


@register_model("feature_refinement", representation="flow", input_shape=(28, 28, 3),
                citation="Zhou et al., Pattern Recognition 2022", aux_losses={"proposal": ("proposal", 1.0)},
                explain_layer=("inception2_downsample", "shared"), variants=VARIANTS,
                recipes={"paper": dict(variant="paper", lr=1e-4, batch_size=3, epochs=40, augment=False,
                                       class_weight=False,
                                       source="the authors' Dual-Inception code (its class_weight='auto' weighs "
                                              "nothing in Keras 2.2); not its checkpoint chosen on validation "
                                              "subjects")})
def build_feature_refinement(input_shape=(28, 28, 3), num_classes: int = 3, filters=(6, 16), feature_dim: int = 64,
                             attention_filters: int = 32, dropout: float = 0.5, variant: str = "one_stream",
                             name: str = "feature_refinement"):
    """Build Feature Refinement.

    Args:
        input_shape: (H, W, 3) flow image (u, v, strain) as float32 in [0, 255], H and W divisible by 4.
        num_classes: K (one proposal branch each). filters: per-path widths of the two inception
        blocks. feature_dim: size of each expression-specific feature. attention_filters: width of
        the attention convolution. dropout: rate on the fused feature. variant: ``one_stream``
        (one inception stream on u, v, strain) or ``paper`` (two streams, on u and on v).
    Returns:
        Functional ``keras.Model`` with outputs ``{"predictions": (B, K) softmax,
        "proposal": (B, K) sigmoid scores}``, float32.
    Raises:
        OptionError: an unknown variant, or ``paper`` on an input with fewer than 2 channels.
    """
    from mer_keras.errors import OptionError
    from mer_keras.layers.custom import ChannelSlice  # Keras classes: TensorFlow

    if variant not in VARIANTS:
        raise OptionError(f"unknown feature_refinement variant {variant!r}; expected one of {VARIANTS}")
    if variant == "paper" and input_shape[-1] < 2:
        raise OptionError(f"the paper variant takes u and v: it needs 2 or more channels, got {input_shape}")
    inputs = keras.Input(shape=input_shape, name="input")
    x = apply_input_scaling(inputs)
    if variant == "paper":
        streams = []
        for c, flow in enumerate(("u", "v")):
            s = ChannelSlice(c, c + 1, name=flow)(x)
            for b, f in enumerate(filters, start=1):
                s = apply_inception(s, f, f"{flow}_inception{b}")
            streams.append(s)
        x = layers.Concatenate(name="shared")(streams)
    else:
        for b, f in enumerate(filters, start=1):
            x = apply_inception(x, f, f"inception{b}")
    branches = [apply_expression_branch(x, k, feature_dim, attention_filters) for k in range(num_classes)]
    fused = layers.Concatenate(name="fusion")([e for e, _ in branches])
    fused = layers.Dropout(dropout, name="fusion_dropout")(fused)
    predictions = layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(fused)
    proposal = layers.Concatenate(dtype="float32", name="proposal")([s for _, s in branches])
    return keras.Model(inputs, {"predictions": predictions, "proposal": proposal}, name=name)
