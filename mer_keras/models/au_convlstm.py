"""AU-multitask ConvLSTM: facial action learning with muscle-movement constraints.

After "Microexpression Recognition Based on Facial Action Learning With Muscle Movement
Constraints" (the seed abstract of this project). We could not find the paper's text, venue or
code; the network below follows the abstract's description as the issue gives it, and every
size in it is our choice (documented, configurable). Input: a ``sequence`` of T = 8 aligned
frames sampled evenly from onset to offset, 64 x 64 RGB each.

1. Per-frame backbone (shared over time, ``TimeDistributed``): three stages of 3x3 convolution,
   batch normalisation, ReLU and 2x2 max-pooling with ``widths`` (32, 64, 128) filters:
   64 -> 32 -> 16 -> 8.
2. Multi-scale weighted module (global context): each stage's map is average-pooled to the last
   stage's resolution (8 x 8), projected by a 1x1 convolution to ``dim`` channels and merged by a
   normalised learned weighted sum (:class:`~mer_keras.layers.custom.NormalizedWeightedSum`,
   fast normalised fusion).
3. Facial-action learning module (local features): a 3x3 convolution on the last stage gives
   ``dim`` local channels per frame; their spatio-temporal average feeds
   * ``au``: A sigmoid outputs, the AUs of :data:`mer_keras.facs.AU_VOCABULARY`, trained
     with binary cross-entropy against the coding sheet's AUs (clips without AUs are masked), and
   * ``au_cluster``: an ``embedding_dim`` embedding, L2-normalised (so the loss cannot be met by
     shrinking it), trained by the clustering constraint
     (:func:`mer_keras.train.targets.au_centre_loss`: clips sharing an AU are pulled together).
4. Global and local features are stacked per frame (2 dim channels), passed through a ConvLSTM
   (``dim`` filters, 3x3; :func:`apply_unrolled_conv_lstm`) over the T frames, then batch norm,
   global average pooling, dropout and the softmax (``predictions``).

Loss = cross-entropy + 0.5 AU loss + 0.1 clustering loss (``--aux-weight au=...``,
``au_cluster=...``).

The muscle-movement constraint on databases without AU coding: the paper applies its
facial-action module to SMIC, which has no AU codes, so the constraint there must come from how
emotions and AUs go together. A clip without AU codes takes its emotion's row of an emotion -> AU
table as a soft AU target (for ``au`` and ``au_cluster``): the EMFACS prototypes of the basic
emotions (and CASME II's criteria for repression), pooled for the composite's negative class,
blended with the AU codes of the training fold's coded clips of that class
(:func:`mer_keras.facs.emotion_au_prior`; fitted on training subjects only). Clips of a class
with no table row and no coded clip (``others``) stay masked.

What follows the paper's description (as the abstract gives it): a per-frame CNN, a multi-scale
weighted module for global context, a facial-action module learning AUs with a muscle-movement
(clustering) constraint, a ConvLSTM over the frames, and the use of the facial-action module on
SMIC through emotion-AU correlation. The project's design: every size (T = 8, 64 x 64, widths,
``dim``, ``embedding_dim``), the fast-normalised weighted sum, the batch centre loss as the form
of the clustering constraint, the loss weights 0.5 and 0.1, the AU vocabulary, the EMFACS-based
table and its blend with the codes (``PRIOR_STRENGTH`` = 4 pseudo-clips), and the unrolled
ConvLSTM.

The ConvLSTM is unrolled over the fixed T with shared stock layers instead of Keras
``ConvLSTM2D``: the converter then sees static shapes and no while loop. (``ConvLSTM2D``
converts to float TFLite only with a static batch, and full-integer calibration of its while
loop crashed the TensorFlow 2.19 converter with a segmentation fault in our test.) The unrolled
cell computes exactly the ConvLSTM2D equations (Shi et al., NeurIPS 2015, without peepholes) with
sigmoid gates.
"""

from __future__ import annotations

from mer_keras._keras import keras_layers
from mer_keras._keras import lazy_keras as keras  # TensorFlow loads when a model is built
from mer_keras.facs import AU_VOCABULARY
from mer_keras.layers import apply_input_scaling
from mer_keras.registry import register_model

layers = keras_layers


def apply_frame_stage(x, filters: int, name: str):
    """Per-frame conv3x3 -> BN -> ReLU -> 2x2 max-pool; (B, T, H, W, C) -> (B, T, H/2, W/2, filters)."""
    td = layers.TimeDistributed
    x = td(layers.Conv2D(filters, 3, padding="same", use_bias=False), name=f"{name}_conv")(x)
    x = td(layers.BatchNormalization(), name=f"{name}_bn")(x)
    x = td(layers.ReLU(), name=f"{name}_relu")(x)
    return td(layers.MaxPooling2D(2), name=f"{name}_pool")(x)


def apply_unrolled_conv_lstm(x, filters: int, kernel_size: int, name: str):
    """ConvLSTM over a fixed number of frames, unrolled with shared layers; returns the last state.

    Per step t: ``z = W_x * x_t + W_h * h_{t-1} + b`` (two 'same' convolutions; the first shared
    over time, the second bias-free), split into gates i, f, g, o (``filters`` channels each),
    ``c_t = sigmoid(f) c_{t-1} + sigmoid(i) tanh(g)``, ``h_t = sigmoid(o) tanh(c_t)``; h_0 = c_0 = 0.
    The forget-gate bias starts at 1 (as Keras' ``unit_forget_bias``).

    Args:
        x: (B, T, H, W, C) float32. Returns: (B, H, W, filters) float32, h_T.
    """
    from mer_keras.layers.custom import ChannelSlice, TimeStep  # Keras classes: TensorFlow
    steps = x.shape[1]
    bias = [0.0] * filters + [1.0] * filters + [0.0] * (2 * filters)
    input_conv = layers.Conv2D(4 * filters, kernel_size, padding="same", name=f"{name}_input",
                               bias_initializer=keras.initializers.Constant(bias))
    recurrent_conv = layers.Conv2D(4 * filters, kernel_size, padding="same", use_bias=False,
                                   kernel_initializer="orthogonal", name=f"{name}_recurrent")
    h = c = None
    for t in range(steps):
        z = input_conv(TimeStep(t, name=f"{name}_frame{t}")(x))
        if h is not None:
            z = layers.Add(name=f"{name}_gates{t}")([z, recurrent_conv(h)])
        i, f, g, o = (ChannelSlice(k * filters, (k + 1) * filters, name=f"{name}_{gate}{t}")(z)
                      for k, gate in enumerate("ifgo"))
        i = layers.Activation("sigmoid", name=f"{name}_i_act{t}")(i)
        f = layers.Activation("sigmoid", name=f"{name}_f_act{t}")(f)
        g = layers.Activation("tanh", name=f"{name}_g_act{t}")(g)
        o = layers.Activation("sigmoid", name=f"{name}_o_act{t}")(o)
        ig = layers.Multiply(name=f"{name}_ig{t}")([i, g])
        c = ig if c is None else layers.Add(name=f"{name}_c{t}")([layers.Multiply(name=f"{name}_fc{t}")([f, c]), ig])
        h = layers.Multiply(name=f"{name}_h{t}")([o, layers.Activation("tanh", name=f"{name}_c_act{t}")(c)])
    return h


@register_model("au_convlstm", representation="sequence", input_shape=(8, 64, 64, 3),
                citation="Facial action learning with muscle movement constraints (seed abstract)",
                aux_losses={"au": ("au", 0.5), "au_cluster": ("au_cluster", 0.1)})
def build_au_convlstm(input_shape=(8, 64, 64, 3), num_classes: int = 3, widths=(32, 64, 128), dim: int = 64,
                      embedding_dim: int = 64, num_aus: int = len(AU_VOCABULARY), dropout: float = 0.3,
                      name: str = "au_convlstm"):
    """Build the AU-multitask ConvLSTM network.

    Args:
        input_shape: (T, H, W, C) float32 in [0, 255]; H and W divisible by 2^len(widths).
        num_classes: K. widths: backbone stage widths. dim: width of the global and local
        features and of the ConvLSTM. embedding_dim: clustering embedding size. num_aus: A.
    Returns:
        Functional ``keras.Model`` with outputs ``{"predictions": (B, K) softmax, "au": (B, A)
        sigmoid, "au_cluster": (B, embedding_dim) unit-length}``, float32.
    """
    from mer_keras.layers.custom import NormalizedWeightedSum  # Keras classes: TensorFlow
    td = layers.TimeDistributed
    inputs = keras.Input(shape=input_shape, name="input")
    x = apply_input_scaling(inputs)
    stages = []
    for s, f in enumerate(widths, start=1):
        x = apply_frame_stage(x, f, f"stage{s}")
        stages.append(x)
    side = stages[-1].shape[2]
    scaled = []
    for s, feat in enumerate(stages, start=1):
        factor = feat.shape[2] // side
        if factor > 1:
            feat = td(layers.AveragePooling2D(factor), name=f"multiscale{s}_resize")(feat)
        scaled.append(td(layers.Conv2D(dim, 1), name=f"multiscale{s}_project")(feat))
    global_features = NormalizedWeightedSum(name="multiscale_fusion")(scaled)
    local = td(layers.Conv2D(dim, 3, padding="same", activation="relu"), name="action_local")(stages[-1])
    action = layers.GlobalAveragePooling3D(name="action_pool")(local)
    au = layers.Dense(num_aus, activation="sigmoid", dtype="float32", name="au")(action)
    embedding = layers.Dense(embedding_dim, name="au_embedding")(action)
    # Unit length: the clustering loss cannot be met by shrinking the embedding to zero.
    embedding = layers.UnitNormalization(dtype="float32", name="au_cluster")(embedding)
    stacked = layers.Concatenate(name="stack")([global_features, local])
    x = apply_unrolled_conv_lstm(stacked, dim, 3, name="convlstm")
    x = layers.BatchNormalization(name="convlstm_bn")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    predictions = layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, {"predictions": predictions, "au": au, "au_cluster": embedding}, name=name)
