"""The program's batches: every fold's own batches of every epoch, side by side, as positions into one array.

Computed in numpy before the fit (:func:`~mer_keras.train.tfdata.epoch_plans` gives each fold the
order, flips, shifts and mixing its own :func:`~mer_keras.train.tfdata.training_dataset` draws);
the images themselves are gathered inside the program's step
(:meth:`~mer_keras.train.vectorized.model.FoldedModel.inputs_of`).
"""

from __future__ import annotations

import numpy as np

from mer_keras._keras import tf


def folded_dataset(train_indices, y, cfg, num_classes: int, ks, start_epoch: int = 0, soft_targets=None,
                   image_size: tuple[int, int] | None = None):
    """The program's batches as positions into one input array: per step, per group, the K folds'
    batches side by side (their images are gathered inside the program, :meth:`FoldedModel.inputs_of`).

    Fold ``j`` visits its training samples in the order, with the flips and shifts, of its own
    :func:`~mer_keras.train.tfdata.training_dataset` (:func:`~mer_keras.train.tfdata.epoch_plans`
    computes the same values for every epoch at once), each sample weighted by its class's
    balanced weight among the fold's training labels; a shorter last batch is padded with weight-0
    samples up to ``cfg.batch_size``.

    Args:
        train_indices: per fold, its training samples' indices into the input array, in the order
            of the groups; every fold gives the same steps per epoch. y: (N,) int labels of the
            array. ks: folds per group.
        soft_targets: per fold, (n_j, C) float32 target distributions of its training samples (in
            the order of ``train_indices[j]``; distillation), or None.
        image_size: the inputs' (H, W), for cut-mix boxes.
    Returns:
        (dataset of per-group tuples (index (B, K) int32, flip (B, K) bool, offsets (B, K, 2) int32,
        y (B, K) int64, w (B, K) float32, n (K,) float32[, soft (B, K, C) float32][, perm (B, K)
        int32, lam (B, K) float32 (mixup) or boxes (B, K, 4) int32 (cut-mix)]), steps per epoch).
    Raises:
        ValueError: the folds give different steps per epoch, or ``ks`` does not add up to them.
    """
    from mer_keras.data.weights import balanced_class_weight
    from mer_keras.train.tfdata import epoch_plans

    steps = {-(-len(t) // cfg.batch_size) for t in train_indices}
    if len(steps) != 1 or sum(ks) != len(train_indices):
        raise ValueError(f"training sets of {[len(t) for t in train_indices]} samples give steps per epoch "
                         f"{sorted(steps)} for groups {list(ks)}: folds trained together need equal steps")
    b, y, n_steps = cfg.batch_size, np.asarray(y), steps.pop()
    cutmix = bool(getattr(cfg, "cutmix", False))
    mixup = bool(getattr(cfg, "mixup", False)) or cutmix  # both mix rows with the next row of the batch
    balanced = getattr(cfg, "sampling", "shuffle") == "balanced"
    if cutmix and image_size is None:
        raise ValueError("cut-mix needs the inputs' image_size")
    if mixup and soft_targets is None:  # mixup mixes target distributions: the labels' one-hot rows
        soft_targets = [np.eye(num_classes, dtype=np.float32)[y[np.asarray(t, np.int64)]] for t in train_indices]
    folds = []
    for train in train_indices:
        train = np.asarray(train, np.int64)
        yj = y[train]
        cw = balanced_class_weight(yj, num_classes) if cfg.class_weight else None
        w = np.array([cw[int(c)] for c in yj], np.float32) if cw else np.ones(len(yj), np.float32)
        folds.append((train, yj, w))
    bounds = np.cumsum([0, *ks])
    # every epoch's plan of every fold, computed here: the generator below runs no TensorFlow op (an
    # eager op inside a tf.data generator can deadlock with the thread that iterates the dataset)
    plans = [epoch_plans(len(train), cfg.seed, range(start_epoch, cfg.epochs), cfg.augment, cfg.shift, mixup,
                         cutmix=tuple(image_size) if cutmix else None, labels=yj if balanced else None)
             for train, yj, _ in folds]

    def epoch_batches(epoch: int):
        """(steps, B, F) arrays of every fold's batches of one epoch, padded."""
        total = len(folds)
        index = np.zeros((n_steps, b, total), np.int32)
        flip = np.zeros((n_steps, b, total), bool)
        offsets = np.zeros((n_steps, b, total, 2), np.int32)
        labels = np.zeros((n_steps, b, total), np.int64)
        weights = np.zeros((n_steps, b, total), np.float32)
        counts = np.zeros((n_steps, total), np.float32)
        soft = np.zeros((n_steps, b, total, num_classes), np.float32) if soft_targets is not None else None
        if mixup:  # padding rows: their own partner, weight 1
            perm = np.broadcast_to(np.arange(b, dtype=np.int32)[None, :, None], (n_steps, b, total)).copy()
            lam = np.ones((n_steps, b, total), np.float32)
            boxes = np.zeros((n_steps, b, total, 4), np.int32)  # cut-mix: empty boxes
        e = epoch - start_epoch
        for j, (train, yj, w) in enumerate(folds):
            plan = {key: value[e:e + 1] for key, value in plans[j].items()}
            order = plan["order"][0]
            for s in range(n_steps):
                pos = order[s * b:(s + 1) * b]
                m = len(pos)
                index[s, :m, j], labels[s, :m, j], weights[s, :m, j] = train[pos], yj[pos], w[pos]
                flip[s, :m, j], offsets[s, :m, j] = plan["flip"][0][pos], plan["offsets"][0][pos]
                counts[s, j] = m
                if soft is not None:
                    soft[s, :m, j] = soft_targets[j][pos]
                if mixup:  # as tfdata.mix: row r with row (r + 1) % m, targets (and class weights) alike
                    lj = plan["lam"][0][pos]
                    nxt = np.roll(np.arange(m), -1)
                    perm[s, :m, j], lam[s, :m, j] = nxt, lj
                    if cutmix:
                        boxes[s, :m, j] = plan["box"][0][pos]
                    t = soft[s, :m, j].copy()
                    soft[s, :m, j] = lj[:, None] * t + (np.float32(1.0) - lj)[:, None] * t[nxt]
                    if cfg.class_weight:
                        wj = weights[s, :m, j].copy()
                        weights[s, :m, j] = lj * wj + (np.float32(1.0) - lj) * wj[nxt]
        mixing = ((perm, boxes) if cutmix else (perm, lam)) if mixup else ()
        return (index, flip, offsets, labels, weights, counts) + ((soft,) if soft is not None else ()) + mixing

    def generate():
        for epoch in range(start_epoch, cfg.epochs):
            arrays = epoch_batches(epoch)
            for s in range(n_steps):
                yield tuple(tuple(a[s][lo:hi] if a.ndim == 2 else a[s][:, lo:hi] for a in arrays)
                            for lo, hi in zip(bounds[:-1], bounds[1:]))

    signature = tuple((tf.TensorSpec((b, k), tf.int32), tf.TensorSpec((b, k), tf.bool),
                       tf.TensorSpec((b, k, 2), tf.int32), tf.TensorSpec((b, k), tf.int64),
                       tf.TensorSpec((b, k), tf.float32), tf.TensorSpec((k,), tf.float32))
                      + ((tf.TensorSpec((b, k, num_classes), tf.float32),) if soft_targets is not None else ())
                      + ((tf.TensorSpec((b, k), tf.int32), tf.TensorSpec((b, k, 4), tf.int32)) if cutmix else
                         (tf.TensorSpec((b, k), tf.int32), tf.TensorSpec((b, k), tf.float32)) if mixup else ())
                      for k in ks)
    return tf.data.Dataset.from_generator(generate, output_signature=signature).prefetch(2), n_steps
