"""HTNet: hierarchical transformer on facial-region optical flow.

Z. Wang, K. Zhang, W. Luo, R. Sankaranarayana, "HTNet for micro-expression recognition",
Neurocomputing 602, 2024 (arXiv 2307.14637); official code github.com/wangzhifengharrison/HTNet.
Its published MEGC2019 composite result (UF1 0.8603, UAR 0.8475) is the strongest we know of.

Input: the onset -> apex flow (u, v, strain) of four facial regions (eyes and mouth corners), each
a quarter of the image, tiled 2 x 2 into 28 x 28 x 3 (:func:`mer_keras.data.pipeline.
region_flow_representation`; representation ``flow`` with ``regions="htnet"``).

Network (the official training script: image_size 28, patch_size 7, dim 256, heads 3, three
hierarchies, block repeats (2, 2, 10), MLP ratio 4, no dropout):

1. Patch embedding: non-overlapping 7 x 7 patches flattened (147 values) and a linear map to
   ``dim``: a 4 x 4 token map.
2. Three levels, coarse to fine in the official naming (level 2, 1, 0) with widths dim x (1, 2,
   4) = 256, 512, 1024, heads 3, 6, 12, and depths 2, 2, 10. At each level the map is cut into
   2^level x 2^level blocks; a learned positional bias per in-block position is added, and
   pre-norm transformer layers (``x + MHSA(LN x)``, ``x + MLP(LN x)``, GELU, head size
   dim // heads) run within each block. Between levels, block aggregation: 3x3 convolution to the
   next width, LayerNorm, 3x3/2 max-pooling (4x4 -> 2x2 -> 1x1).
3. Head: LayerNorm, global average pooling, softmax.

With these settings every block holds a single token (the map side equals the number of blocks
per side), so attention over one key reduces to its value and output projections; that is how
the official model behaves and it is kept. Set ``patch_size``/``input_shape`` so that blocks hold
several tokens to get working attention (e.g. ``patch_size=2`` with a 32 x 32 input).

Parameters: the official PyTorch model has 139,582,982 (our count of its code); this one has
11,776 fewer, the output-projection biases Keras ``MultiHeadAttention(use_bias=False)`` does not
have (the official q/k/v projection has no bias, its output projection has one), i.e.
139,571,206 for 3 classes; a test checks it.

Departures, and why:

* Regions come from mediapipe face-mesh landmarks on the aligned onset frame (eye-contour centres,
  mouth corners 61/291) and are cut from flow computed at the 128 px alignment resolution,
  not from MTCNN points on a 28 x 28 apex image; the official crop indexing transposes its crops,
  we crop as intended (see the pipeline function).
* A parameter-free Rescaling maps [0, 255] to [-1, 1]; the official code feeds raw 0-255 values.
* Training follows this project's honest protocol (fixed epochs). The official script keeps,
  for every test subject, the epoch with the best test accuracy; its "best" figures are chosen on
  the test subject and are not comparable with ours.
* ``variant="small"`` (dim 64, heads 2, depths (2, 2, 2); 2,452,998 parameters) is offered for edge
  devices; ``"paper"`` is the default. ``"small_narrow"`` (dim 32, a width multiplier of 1/2 on
  ``small``), not from the paper, is a row of the accuracy search (docs/REAL_DATA.md).
"""

from __future__ import annotations

from mer_keras._keras import keras_layers
from mer_keras._keras import lazy_keras as keras  # TensorFlow loads when a model is built
from mer_keras.errors import OptionError
from mer_keras.layers import apply_input_scaling
from mer_keras.registry import register_model

layers = keras_layers

VARIANTS = {
    "paper": {"dim": 256, "heads": 3, "depths": (2, 2, 10), "mlp_mult": 4},
    "small": {"dim": 64, "heads": 2, "depths": (2, 2, 2), "mlp_mult": 4},
    "small_narrow": {"dim": 32, "heads": 2, "depths": (2, 2, 2), "mlp_mult": 4},
}


def apply_transformer_layer(x, dim: int, heads: int, mlp_mult: int, dropout: float, name: str):
    """Pre-norm transformer layer within blocks: (B, N, T, dim) -> same shape (attention over T)."""
    y = layers.LayerNormalization(epsilon=1e-5, name=f"{name}_attn_norm")(x)
    y = layers.MultiHeadAttention(heads, dim // heads, use_bias=False, dropout=dropout, attention_axes=(2,),
                                  name=f"{name}_attn")(y, y)
    x = layers.Add(name=f"{name}_attn_add")([x, y])
    y = layers.LayerNormalization(epsilon=1e-5, name=f"{name}_mlp_norm")(x)
    y = layers.Dense(dim * mlp_mult, activation="gelu", name=f"{name}_mlp_fc1")(y)
    y = layers.Dropout(dropout, name=f"{name}_mlp_dropout")(y)
    y = layers.Dense(dim, name=f"{name}_mlp_fc2")(y)
    return layers.Add(name=f"{name}_mlp_add")([x, y])


def blockify(x, blocks: int, name: str):
    """(B, H, W, C) -> (B, blocks^2, (H/blocks)(W/blocks), C): tokens grouped by block, row-major."""
    h, w, c = x.shape[1:]
    sh, sw = h // blocks, w // blocks
    if sh * sw == 1:
        return layers.Reshape((blocks * blocks, 1, c), name=f"{name}_blockify")(x)
    x = layers.Reshape((blocks, sh, blocks, sw, c), name=f"{name}_split")(x)
    x = layers.Permute((1, 3, 2, 4, 5), name=f"{name}_group")(x)
    return layers.Reshape((blocks * blocks, sh * sw, c), name=f"{name}_blockify")(x)


def unblockify(x, blocks: int, h: int, w: int, name: str):
    """Inverse of :func:`blockify`: (B, blocks^2, T, C) -> (B, H, W, C)."""
    c = x.shape[-1]
    sh, sw = h // blocks, w // blocks
    if sh * sw == 1:
        return layers.Reshape((h, w, c), name=f"{name}_unblockify")(x)
    x = layers.Reshape((blocks, blocks, sh, sw, c), name=f"{name}_ungroup")(x)
    x = layers.Permute((1, 3, 2, 4, 5), name=f"{name}_merge")(x)
    return layers.Reshape((h, w, c), name=f"{name}_unblockify")(x)


# the official training script: Adam, lr 5e-5 (at 1e-3 it stays at chance; MODELS.md)
@register_model("htnet", representation="flow", input_shape=(28, 28, 3), citation="Wang et al., Neurocomputing 2024",
                representation_options={"regions": "htnet"}, explain_layer="level2_unblockify",
                lr=5e-5, variants=tuple(VARIANTS),
                recipes={"paper": dict(lr=5e-5, epochs=800, batch_size=256, augment=False, class_weight=False,
                                       source="the official training script; not its best epoch per test subject")})
def build_htnet(input_shape=(28, 28, 3), num_classes: int = 3, variant: str = "paper", patch_size: int = 7,
                dim: int | None = None, heads: int | None = None, depths=None, mlp_mult: int | None = None,
                dropout: float = 0.0, name: str = "htnet"):
    """Build HTNet.

    Args:
        input_shape: (H, W, C) float32 in [0, 255]; H = W divisible by patch_size, and the patch map
            side divisible by 2^(levels - 1).
        num_classes: K. variant: ``"paper"`` or ``"small"`` (see :data:`VARIANTS`); ``dim``,
            ``heads``, ``depths`` (one per level, coarse first) and ``mlp_mult`` override it.
    Returns:
        Functional ``keras.Model``: (B, H, W, C) float32 -> (B, K) float32 probabilities.
    Raises:
        OptionError: unknown variant or sizes that do not tile.
    """
    from mer_keras.layers.custom import TokenPositionBias  # Keras classes: TensorFlow
    if variant not in VARIANTS:
        raise OptionError(f"unknown HTNet variant {variant!r}; expected one of {sorted(VARIANTS)}")
    cfg = {**VARIANTS[variant], **{k: v for k, v in dict(dim=dim, heads=heads, depths=depths, mlp_mult=mlp_mult).items()
                                   if v is not None}}
    levels = len(cfg["depths"])
    h, w, c = input_shape
    side = h // patch_size
    if h != w or h % patch_size or side % 2 ** (levels - 1):
        raise OptionError(f"HTNet needs a square input divisible by patch_size {patch_size} whose patch map side "
                          f"({side}) is divisible by {2 ** (levels - 1)}; got {input_shape}")
    inputs = keras.Input(shape=input_shape, name="input")
    x = apply_input_scaling(inputs)
    # Patch embedding: 7x7 non-overlapping patches -> linear map (a strided convolution is the same).
    x = layers.Conv2D(cfg["dim"], patch_size, strides=patch_size, name="patch_embedding")(x)
    for i, depth in enumerate(cfg["depths"]):
        level = levels - 1 - i
        width, n_heads, blocks = cfg["dim"] * 2 ** i, cfg["heads"] * 2 ** i, 2 ** level
        hh, ww = x.shape[1], x.shape[2]
        t = blockify(x, blocks, f"level{level}")
        t = TokenPositionBias(name=f"level{level}_position")(t)
        for d in range(depth):
            t = apply_transformer_layer(t, width, n_heads, cfg["mlp_mult"], dropout, f"level{level}_layer{d + 1}")
        x = unblockify(t, blocks, hh, ww, f"level{level}")
        if level > 0:  # block aggregation to the next (coarser-block) level
            x = layers.Conv2D(width * 2, 3, padding="same", name=f"level{level}_aggregate_conv")(x)
            x = layers.LayerNormalization(epsilon=1e-5, name=f"level{level}_aggregate_norm")(x)
            x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"level{level}_aggregate_pool")(x)
    x = layers.LayerNormalization(epsilon=1e-5, name="head_norm")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)
