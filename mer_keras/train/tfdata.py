"""tf.data pipelines over in-memory inputs: training batches that are a function of (seed, epoch),
and plain batching for prediction and the short QAT fine-tune."""

from __future__ import annotations

import numpy as np

from mer_keras._keras import tf


def _flip(img, flow_input: bool):
    """Mirror every frame horizontally (the width axis is -2 of (..., H, W, C)); negate u of a flow
    image (stored as 127.5 + 127.5 u / scale, hence 255 - value)."""
    flipped = tf.reverse(img, axis=[-2])
    if flow_input:
        flipped = tf.concat([255.0 - flipped[..., :1], flipped[..., 1:]], axis=-1)
    return flipped


def flipped(x: np.ndarray, flow_input: bool) -> np.ndarray:
    """``x`` (N, ..., H, W, C) float32 mirrored as a training flip mirrors it (:func:`_flip`: the
    width axis reversed, u -> 255 - u for a flow image)."""
    return np.asarray(_flip(tf.constant(x, tf.float32), flow_input))


def make_dataset(x: np.ndarray, y=None, batch_size: int = 32, shuffle: bool = False,
                 augment: bool = False, flow_input: bool = False, seed: int = 0,
                 sample_weight=None) -> tf.data.Dataset:
    """tf.data pipeline over in-memory inputs (prediction, and the short QAT fine-tune).

    Training uses :func:`training_dataset`, whose order and flips are a function of the epoch.

    Args:
        x: (N, H, W, C) or (N, T, H, W, C) float32 in [0, 255].
        y: (N,) int labels, a dict of per-output targets, or None.
        sample_weight: (N,) float32 or a dict of them per output, or None.
    Returns:
        Batched dataset of x, (x, y) or (x, y, w). Flips mirror every frame horizontally and
        negate u (channel 0, stored as 127.5 + 127.5 u / scale, hence 255 - value) when ``flow_input``.
    """
    parts = (x,) + ((y,) if y is not None else ()) + ((sample_weight,) if sample_weight is not None else ())
    ds = tf.data.Dataset.from_tensor_slices(parts if len(parts) > 1 else x)
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    if augment:
        def flip(img, *rest):
            coin = tf.random.uniform((), seed=seed) < 0.5
            img = tf.where(coin, _flip(img, flow_input), img)
            return (img, *rest) if rest else img

        ds = ds.map(flip, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


#: Offset of the seeds of the shift draws, so they never coincide with the flip coins' seeds.
SHIFT_SEED_OFFSET = 1_000_003
#: Offset of the seeds of the mixup weights (neither the coins' nor the shifts').
MIXUP_SEED_OFFSET = 2_000_003


def _shift(img, offsets):
    """Translate every sample of a batch by its own (dy, dx) pixels, repeating the edge rows and
    columns (no wrap-around, no synthetic zero motion). img: (B, ..., H, W, C); offsets: (B, 2) int32."""
    rank = img.shape.rank
    h, w = tf.shape(img)[rank - 3], tf.shape(img)[rank - 2]
    rows = tf.clip_by_value(tf.range(h)[None, :] - offsets[:, :1], 0, h - 1)
    cols = tf.clip_by_value(tf.range(w)[None, :] - offsets[:, 1:], 0, w - 1)
    img = tf.gather(img, rows, axis=rank - 3, batch_dims=1)
    return tf.gather(img, cols, axis=rank - 2, batch_dims=1)


def _epoch_plan(n: int, seed64, epoch, augment: bool, shift: int, mixup: bool = False):
    """One epoch's visiting order, flip coins, shifts and mixup weights of N samples, a pure function
    of (seed, epoch): (order (N,) int64, coins (N,) bool or None, offsets (N, 2) int32 or None,
    lam (N,) float32 or None), indexed by position."""
    positions = tf.range(n, dtype=tf.int64)
    order = tf.random.experimental.stateless_shuffle(positions, seed=tf.stack([seed64, epoch]))
    coins = offsets = None
    if augment:  # one coin per sample, drawn once per epoch; batches then gather them
        coins = tf.map_fn(lambda i: tf.random.stateless_uniform((), seed=tf.stack([seed64, epoch * n + i + 1])),
                          positions, fn_output_signature=tf.float32) < 0.5
    if shift:  # one (dy, dx) per sample, drawn once per epoch
        shift_seed = seed64 + SHIFT_SEED_OFFSET
        offsets = tf.map_fn(
            lambda i: tf.random.stateless_uniform((2,), seed=tf.stack([shift_seed, epoch * n + i + 1]),
                                                  minval=-shift, maxval=shift + 1, dtype=tf.int32),
            positions, fn_output_signature=tf.int32)
    lam = None
    if mixup:  # one mixing weight per sample, uniform in [0, 1) (Beta(1, 1))
        mix_seed = seed64 + MIXUP_SEED_OFFSET
        lam = tf.map_fn(lambda i: tf.random.stateless_uniform((), seed=tf.stack([mix_seed, epoch * n + i + 1])),
                        positions, fn_output_signature=tf.float32)
    return order, coins, offsets, lam


def training_positions(n: int, batch_size: int, epochs: int, seed: int = 0, augment: bool = False, shift: int = 0,
                       start_epoch: int = 0, mixup: bool = False) -> tuple[tf.data.Dataset, int]:
    """What :func:`training_dataset` gathers, without the images: per batch, the positions (into the
    N training samples) it visits, each one's flip and shift (and mixup weight).

    Returns:
        (dataset of (positions (b,) int64, flip (b,) bool, offsets (b, 2) int32[, lam (b,) float32])
        batches of epochs ``start_epoch..epochs-1``, steps per epoch); flip is all False without
        ``augment``, offsets all 0 without ``shift``; lam only with ``mixup``.
    """
    steps = -(-n // batch_size)
    seed64 = tf.constant(seed, tf.int64)

    def one_epoch(epoch):
        order, coins, offsets, lam = _epoch_plan(n, seed64, epoch, augment, shift, mixup)
        coins = coins if coins is not None else tf.zeros([n], tf.bool)
        offsets = offsets if offsets is not None else tf.zeros([n, 2], tf.int32)
        if mixup:
            return tf.data.Dataset.from_tensor_slices(order).batch(batch_size).map(
                lambda batch: (batch, tf.gather(coins, batch), tf.gather(offsets, batch), tf.gather(lam, batch)))
        return tf.data.Dataset.from_tensor_slices(order).batch(batch_size).map(
            lambda batch: (batch, tf.gather(coins, batch), tf.gather(offsets, batch)))

    return tf.data.Dataset.range(start_epoch, epochs).flat_map(one_epoch), steps


def mix(values, lam):
    """Mixup of a batch with itself shifted by one row: row r becomes ``lam[r] * values[r] + (1 -
    lam[r]) * values[(r + 1) % b]`` (the batch is in random order, so the partners are random pairs).
    values: (b, ...) float32; lam: (b,) float32."""
    lam = tf.reshape(lam, [-1] + [1] * (values.shape.rank - 1))
    return lam * values + (1.0 - lam) * tf.roll(values, shift=-1, axis=0)


def training_dataset(x: np.ndarray, y, batch_size: int, epochs: int, seed: int = 0, augment: bool = False,
                     flow_input: bool = False, sample_weight=None, start_epoch: int = 0,
                     shift: int = 0, mixup: bool = False) -> tuple[tf.data.Dataset, int]:
    """The training batches of epochs ``start_epoch..epochs-1``, each epoch a pure function of (seed, epoch).

    Epoch ``e`` visits the N samples in the order ``stateless_shuffle(range(N), seed=(seed, e))`` and
    flips sample ``i`` when ``stateless_uniform(seed=(seed, e * N + i + 1)) < 0.5``. Nothing depends
    on how many epochs this process has already run, so a fold resumed at epoch k (Keras
    ``BackupAndRestore``) sees exactly the batches an uninterrupted run sees from epoch k on.
    Batches are gathered and flipped whole (one gather and one select per batch, not a map per
    sample): the same batches, at a fraction of the pipeline's CPU time.

    With ``shift`` = k > 0, sample ``i`` of epoch ``e`` is also translated by (dy, dx), each drawn
    uniformly from -k..k pixels with ``stateless_uniform(seed=(seed + SHIFT_SEED_OFFSET, e * N + i + 1))``,
    the edge rows and columns repeated (after the flip). With k = 0 the batches are exactly those
    without the option.

    With ``mixup`` (Zhang et al., ICLR 2018, with alpha = 1: the weight uniform in [0, 1)), sample
    ``i`` of epoch ``e`` draws ``lam = stateless_uniform(seed=(seed + MIXUP_SEED_OFFSET, e * N + i + 1))``
    and each row of a batch (flipped and shifted) is mixed with the next row of the batch, its
    targets and weights with the same weight (:func:`mix`): y must then be (N, K) float target
    distributions (one-hot labels, or a distillation's targets).

    Args:
        x: (N, ...) float32 in [0, 255]. y: (N,) int labels or a dict of per-output targets.
        batch_size: global batch. sample_weight: (N,) float32, a dict of them per output, or None.
        shift: largest translation in pixels (0: none), for (N, H, W, C) and (N, T, H, W, C) inputs.
    Returns:
        (dataset of (x, y[, w]) batches, steps per epoch = ceil(N / batch_size)); pass both to
        ``fit(..., steps_per_epoch=steps)``: the dataset runs through every remaining epoch once.
    """
    n = len(x)
    check_batching(x, batch_size, shift)
    parts = tf.nest.map_structure(tf.convert_to_tensor,
                                  (x, y) + ((sample_weight,) if sample_weight is not None else ()))
    positions, steps = training_positions(n, batch_size, epochs, seed, augment, shift, start_epoch, mixup)

    def fetch(batch, flip, offsets, lam=None):
        img, *rest = tf.nest.map_structure(lambda t: tf.gather(t, batch), parts)
        if augment:
            img = tf.where(tf.reshape(flip, [-1] + [1] * (img.shape.rank - 1)), _flip(img, flow_input), img)
        if shift:
            img = _shift(img, offsets)
        if lam is not None:
            img, *rest = (mix(tf.cast(t, tf.float32), lam) for t in (img, *rest))
        return (img, *rest)

    return positions.map(fetch).prefetch(tf.data.AUTOTUNE), steps


def check_batching(x, batch_size, shift: int = 0) -> None:
    """Refuse a batch size or shift that training cannot use, naming the option.

    Raises:
        OptionError: ``--batch-size`` not a whole number >= 1, or ``--shift`` not below the input's side.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        from mer_keras.errors import OptionError

        raise OptionError(f"--batch-size {batch_size!r}: expected a whole number of at least 1")
    if shift and not 0 <= shift < min(x.shape[-3], x.shape[-2]):
        from mer_keras.errors import OptionError

        raise OptionError(f"--shift {shift}: expected fewer pixels than the input's side "
                          f"({min(x.shape[-3], x.shape[-2])} px)")


def epoch_plans(n: int, seed: int, epochs, augment: bool = False, shift: int = 0,
                mixup: bool = False) -> dict[str, np.ndarray]:
    """What :func:`training_dataset` visits in each of ``epochs``, computed at once: the order, the
    flips, the shifts and the mixup weights of its N samples (the same values: :func:`_epoch_plan`'s,
    drawn by :mod:`mer_keras.train.philox` instead of one TensorFlow op per sample).

    Returns:
        {"order": (E, N) int64 positions in visiting order, "flip": (E, N) bool by position,
        "offsets": (E, N, 2) int32 by position, and with ``mixup`` "lam": (E, N) float32 by
        position} for the E epochs given.
    """
    from mer_keras.train.philox import stateless_uniform_int_pairs, stateless_uniform_scalars

    epochs = np.asarray(list(epochs), np.int64)
    positions = tf.range(n, dtype=tf.int64)
    order = np.stack([tf.random.experimental.stateless_shuffle(positions, seed=tf.constant([seed, int(e)], tf.int64))
                      .numpy() for e in epochs]) if len(epochs) else np.zeros((0, n), np.int64)
    index = (epochs[:, None] * n + np.arange(n)[None] + 1).reshape(-1)
    flip = np.zeros((len(epochs), n), bool)
    offsets = np.zeros((len(epochs), n, 2), np.int32)
    if augment:
        seeds = np.stack([np.full_like(index, seed), index], 1)
        flip = (stateless_uniform_scalars(seeds) < np.float32(0.5)).reshape(len(epochs), n)
    if shift:
        seeds = np.stack([np.full_like(index, seed + SHIFT_SEED_OFFSET), index], 1)
        offsets = stateless_uniform_int_pairs(seeds, -shift, shift + 1).reshape(len(epochs), n, 2)
    out = {"order": order, "flip": flip, "offsets": offsets}
    if mixup:
        seeds = np.stack([np.full_like(index, seed + MIXUP_SEED_OFFSET), index], 1)
        out["lam"] = stateless_uniform_scalars(seeds).astype(np.float32).reshape(len(epochs), n)
    return out
