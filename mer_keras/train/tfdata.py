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
#: Offsets of the seeds of the cut-mix box centres (rows, columns); the box's area comes from the
#: mixup weight's draw.
CUTMIX_SEED_OFFSETS = (3_000_017, 4_000_037)
#: Offset of the key of the class-balanced draws (:func:`balanced_order`).
SAMPLING_SEED_OFFSET = 5_000_011


def balanced_order(labels, seed: int, epoch: int) -> np.ndarray:
    """Class-balanced sampling: one epoch's N positions drawn class by class, with replacement.

    Each class present among the N ``labels`` gets ``N // C`` draws (C classes present), the first
    ``N % C`` classes of a random class order one more; each draw is a position of that class,
    uniform with replacement; the N positions are then shuffled. A pure function of (labels, seed,
    epoch): numpy's Philox generator keyed by ``(seed + SAMPLING_SEED_OFFSET, epoch)``.

    Args:
        labels: (N,) int class of each training sample. seed, epoch: whole numbers >= 0.
    Returns:
        (N,) int64 positions into the N samples (a sample may appear several times, or not at all).
    """
    labels = np.asarray(labels)
    rng = np.random.Generator(np.random.Philox(key=np.array([seed + SAMPLING_SEED_OFFSET, epoch], np.uint64)))
    classes = np.unique(labels)
    counts = np.full(len(classes), len(labels) // len(classes), np.int64)
    counts[rng.permutation(len(classes))[:len(labels) % len(classes)]] += 1
    drawn = [rng.choice(np.flatnonzero(labels == c), size=int(k), replace=True) for c, k in zip(classes, counts)]
    return rng.permutation(np.concatenate(drawn)).astype(np.int64)


def cut_boxes(lam, rows_u, cols_u, height: int, width: int, xp=np):
    """Cut-mix boxes (Yun et al., ICCV 2019, Algorithm A1): side fraction ``sqrt(1 - lam)``, centre
    uniform over the image, clipped at its edges.

    The same float32 arithmetic in numpy (``xp=np``) and TensorFlow (``xp=tf``), so that both
    training paths paste the same boxes (a test compares them).

    Args:
        lam: (N,) float32 in [0, 1), the mixup weight's draw. rows_u, cols_u: (N,) float32 in [0, 1),
            the centre's draws. height, width: the image's side in pixels.
    Returns:
        (boxes (N, 4) int32 ``(row0, row1, col0, col1)``, half-open; target weights (N,) float32:
        the fraction of the image *not* pasted over, ``1 - box area / (H W)``).
    """
    if xp is np:
        cut = np.sqrt(np.float32(1.0) - np.asarray(lam, np.float32))
        floor, clip, stack = np.floor, np.clip, np.stack
        as_int = lambda t: t.astype(np.int32)  # noqa: E731
        as_float = lambda t: t.astype(np.float32)  # noqa: E731
    else:
        cut = tf.sqrt(1.0 - tf.cast(lam, tf.float32))
        floor, clip, stack = tf.floor, tf.clip_by_value, tf.stack
        as_int = lambda t: tf.cast(t, tf.int32)  # noqa: E731
        as_float = lambda t: tf.cast(t, tf.float32)  # noqa: E731
    half_h, half_w = as_int(floor(cut * np.float32(height))) // 2, as_int(floor(cut * np.float32(width))) // 2
    cy, cx = as_int(floor(rows_u * np.float32(height))), as_int(floor(cols_u * np.float32(width)))
    r0, r1 = clip(cy - half_h, 0, height), clip(cy + half_h, 0, height)
    c0, c1 = clip(cx - half_w, 0, width), clip(cx + half_w, 0, width)
    kept = np.float32(1.0) - as_float((r1 - r0) * (c1 - c0)) / np.float32(height * width)
    return stack([r0, r1, c0, c1], 1), kept


def box_mask(boxes, height: int, width: int):
    """(..., H, W) bool: True inside each box. boxes: (..., 4) int32 (row0, row1, col0, col1)."""
    rows, cols = tf.range(height), tf.range(width)
    inside_r = (rows >= boxes[..., 0:1]) & (rows < boxes[..., 1:2])  # (..., H)
    inside_c = (cols >= boxes[..., 2:3]) & (cols < boxes[..., 3:4])  # (..., W)
    return inside_r[..., :, None] & inside_c[..., None, :]


def _shift(img, offsets):
    """Translate every sample of a batch by its own (dy, dx) pixels, repeating the edge rows and
    columns (no wrap-around, no synthetic zero motion). img: (B, ..., H, W, C); offsets: (B, 2) int32."""
    rank = img.shape.rank
    h, w = tf.shape(img)[rank - 3], tf.shape(img)[rank - 2]
    rows = tf.clip_by_value(tf.range(h)[None, :] - offsets[:, :1], 0, h - 1)
    cols = tf.clip_by_value(tf.range(w)[None, :] - offsets[:, 1:], 0, w - 1)
    img = tf.gather(img, rows, axis=rank - 3, batch_dims=1)
    return tf.gather(img, cols, axis=rank - 2, batch_dims=1)


def _epoch_plan(n: int, seed64, epoch, augment: bool, shift: int, mixup: bool = False, order=None):
    """One epoch's visiting order, flip coins, shifts and mixup weights of N samples, a pure function
    of (seed, epoch): (order (N,) int64, coins (N,) bool or None, offsets (N, 2) int32 or None,
    lam (N,) float32 or None), indexed by position. ``order``: the epoch's order if not a shuffle."""
    positions = tf.range(n, dtype=tf.int64)
    if order is None:
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
                       start_epoch: int = 0, mixup: bool = False, cutmix: tuple[int, int] | None = None,
                       labels=None) -> tuple[tf.data.Dataset, int]:
    """What :func:`training_dataset` gathers, without the images: per batch, the positions (into the
    N training samples) it visits, each one's flip and shift (and mixup weight or cut-mix box).

    Args:
        cutmix: the image's (H, W) for cut-mix boxes, or None. labels: (N,) int classes for
            class-balanced sampling (:func:`balanced_order`), or None (each sample once per epoch).
    Returns:
        (dataset of (positions (b,) int64, flip (b,) bool, offsets (b, 2) int32[, lam (b,) float32
        [, boxes (b, 4) int32]]) batches of epochs ``start_epoch..epochs-1``, steps per epoch); flip
        is all False without ``augment``, offsets all 0 without ``shift``; lam with ``mixup`` or
        ``cutmix`` (then the target weight of :func:`cut_boxes`), boxes with ``cutmix`` only.
    """
    steps = -(-n // batch_size)
    seed64 = tf.constant(seed, tf.int64)
    orders = None
    if labels is not None:  # every epoch's class-balanced order, drawn here (numpy) as epoch_plans draws it
        orders = tf.constant(np.stack([balanced_order(labels, seed, e) for e in range(start_epoch, epochs)])
                             if epochs > start_epoch else np.zeros((0, n), np.int64))

    def one_epoch(epoch):
        given = tf.gather(orders, epoch - start_epoch) if orders is not None else None
        order, coins, offsets, lam = _epoch_plan(n, seed64, epoch, augment, shift, mixup or cutmix is not None, given)
        coins = coins if coins is not None else tf.zeros([n], tf.bool)
        offsets = offsets if offsets is not None else tf.zeros([n, 2], tf.int32)
        extra = ()
        if cutmix is not None:
            positions = tf.range(n, dtype=tf.int64)
            centre = [tf.map_fn(lambda i, o=o: tf.random.stateless_uniform((), seed=tf.stack(
                [seed64 + o, epoch * n + i + 1])), positions, fn_output_signature=tf.float32)
                for o in CUTMIX_SEED_OFFSETS]
            boxes, lam = cut_boxes(lam, centre[0], centre[1], *cutmix, xp=tf)
            extra = (lam, boxes)
        elif mixup:
            extra = (lam,)
        return tf.data.Dataset.from_tensor_slices(order).batch(batch_size).map(
            lambda batch: (batch, tf.gather(coins, batch), tf.gather(offsets, batch),
                           *(tf.gather(t, batch) for t in extra)))

    return tf.data.Dataset.range(start_epoch, epochs).flat_map(one_epoch), steps


def mix(values, lam):
    """Mixup of a batch with itself shifted by one row: row r becomes ``lam[r] * values[r] + (1 -
    lam[r]) * values[(r + 1) % b]`` (the batch is in random order, so the partners are random pairs).
    values: (b, ...) float32; lam: (b,) float32."""
    lam = tf.reshape(lam, [-1] + [1] * (values.shape.rank - 1))
    return lam * values + (1.0 - lam) * tf.roll(values, shift=-1, axis=0)


def paste(values, boxes):
    """Cut-mix of a batch of images with itself shifted by one row: inside row r's box, row
    ``(r + 1) % b``'s pixels (every frame and channel). values: (b, ..., H, W, C); boxes: (b, 4) int32."""
    rank = values.shape.rank
    mask = box_mask(boxes, values.shape[-3], values.shape[-2])  # (b, H, W)
    mask = tf.reshape(mask, [-1] + [1] * (rank - 4) + [values.shape[-3], values.shape[-2], 1])
    return tf.where(mask, tf.roll(values, shift=-1, axis=0), values)


def training_dataset(x: np.ndarray, y, batch_size: int, epochs: int, seed: int = 0, augment: bool = False,
                     flow_input: bool = False, sample_weight=None, start_epoch: int = 0,
                     shift: int = 0, mixup: bool = False, cutmix: bool = False,
                     balanced_labels=None) -> tuple[tf.data.Dataset, int]:
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

    With ``cutmix`` (Yun et al., ICCV 2019, alpha = 1), the same draw ``lam`` sets a box of side
    fraction ``sqrt(1 - lam)`` centred at ``(stateless_uniform(seed=(seed + CUTMIX_SEED_OFFSETS[0],
    e * N + i + 1)), ...[1]...)`` of the image (:func:`cut_boxes`); inside it, each row of a batch
    takes the next row's pixels (:func:`paste`), and its targets and weights are mixed by the
    fraction not pasted over. One of ``mixup`` and ``cutmix``.

    With ``balanced_labels`` (N,) int, epoch ``e`` visits the positions of :func:`balanced_order`
    (class by class, with replacement) instead of a shuffle; a position visited twice has the
    same flip, shift and mixing draws.

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
    check_mixing(mixup, cutmix)
    parts = tf.nest.map_structure(tf.convert_to_tensor,
                                  (x, y) + ((sample_weight,) if sample_weight is not None else ()))
    positions, steps = training_positions(n, batch_size, epochs, seed, augment, shift, start_epoch, mixup,
                                          (x.shape[-3], x.shape[-2]) if cutmix else None, balanced_labels)

    def fetch(batch, flip, offsets, lam=None, boxes=None):
        img, *rest = tf.nest.map_structure(lambda t: tf.gather(t, batch), parts)
        if augment:
            img = tf.where(tf.reshape(flip, [-1] + [1] * (img.shape.rank - 1)), _flip(img, flow_input), img)
        if shift:
            img = _shift(img, offsets)
        if boxes is not None:
            img = paste(tf.cast(img, tf.float32), boxes)
            rest = [mix(tf.cast(t, tf.float32), lam) for t in rest]
        elif lam is not None:
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


def check_mixing(mixup: bool, cutmix: bool) -> None:
    """Refuse mixup and cut-mix together (each row has one partner and one weight).

    Raises:
        OptionError: both are on.
    """
    if mixup and cutmix:
        from mer_keras.errors import OptionError

        raise OptionError("--mixup and --cutmix: choose one (each training sample is mixed with one partner)")


def epoch_plans(n: int, seed: int, epochs, augment: bool = False, shift: int = 0,
                mixup: bool = False, cutmix: tuple[int, int] | None = None, labels=None) -> dict[str, np.ndarray]:
    """What :func:`training_dataset` visits in each of ``epochs``, computed at once: the order, the
    flips, the shifts and the mixup weights of its N samples (the same values: :func:`_epoch_plan`'s,
    drawn by :mod:`mer_keras.train.philox` instead of one TensorFlow op per sample).

    Args:
        cutmix: the image's (H, W) for cut-mix boxes, or None. labels: (N,) int classes for
            class-balanced sampling (:func:`balanced_order`), or None.
    Returns:
        {"order": (E, N) int64 positions in visiting order, "flip": (E, N) bool by position,
        "offsets": (E, N, 2) int32 by position, with ``mixup`` or ``cutmix`` "lam": (E, N) float32
        by position (the target weight), and with ``cutmix`` "box": (E, N, 4) int32 by position}
        for the E epochs given.
    """
    from mer_keras.train.philox import stateless_uniform_int_pairs, stateless_uniform_scalars

    epochs = np.asarray(list(epochs), np.int64)
    positions = tf.range(n, dtype=tf.int64)
    if labels is not None:
        order = np.stack([balanced_order(labels, seed, int(e)) for e in epochs]) if len(epochs) else \
            np.zeros((0, n), np.int64)
    else:
        order = np.stack([tf.random.experimental.stateless_shuffle(positions, seed=tf.constant([seed, int(e)],
                                                                                               tf.int64)).numpy()
                          for e in epochs]) if len(epochs) else np.zeros((0, n), np.int64)
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
    if mixup or cutmix is not None:
        seeds = np.stack([np.full_like(index, seed + MIXUP_SEED_OFFSET), index], 1)
        out["lam"] = stateless_uniform_scalars(seeds).astype(np.float32).reshape(len(epochs), n)
    if cutmix is not None:
        rows_u, cols_u = (stateless_uniform_scalars(np.stack([np.full_like(index, seed + o), index], 1))
                          .astype(np.float32) for o in CUTMIX_SEED_OFFSETS)
        boxes, kept = cut_boxes(out["lam"].reshape(-1), rows_u, cols_u, *cutmix)
        out["box"], out["lam"] = boxes.reshape(len(epochs), n, 4), kept.reshape(len(epochs), n)
    return out
