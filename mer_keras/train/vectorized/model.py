"""The program: G groups of K folds as one Keras model, whose train step is one step of every fold.

Each group is a :class:`~mer_keras.train.vectorized.network.FoldedNetwork`; the step gathers
every fold's batch from the one input array (flips, shifts, mixup and cut-mix as the fold alone
gets them), computes each fold's own loss, minimises their sum, and logs each fold's figures
(:class:`FoldLogs` spreads them into ``fold<i>_...`` at the epoch's end).
"""

from __future__ import annotations

import numpy as np

from mer_keras._keras import keras, tf
from mer_keras.train.vectorized.network import FoldedNetwork


class FoldedModel(keras.Model):
    """G groups of K folds trained by one Keras ``fit``: one step of the program is one step of
    every fold.

    Each step's data is, per group, a tuple of :func:`~mer_keras.train.vectorized.dataset.folded_dataset`:
    the folds' sample indices, flips and shifts (their inputs, (B, ..., K*C) side by side, are
    gathered by :meth:`inputs_of`), y (B, K) int labels, w (B, K) float32 loss weights (class
    weights; 0 for padding), n (K,) float32 the folds' own batch sizes, then the optional target
    distributions and mixing. The loss of fold j is ``sum_b w[b, j] CE[b, j] / n[j]``
    (tf_keras' ``sum_over_batch_size`` on the fold's own batch), plus its auxiliary losses with
    their weights; the program minimises the sum over folds.

    Logs per epoch: ``fold<i>_train_loss`` and ``fold<i>_accuracy`` for fold i (numbered over the
    groups, group by group), and ``loss`` / ``accuracy``, their means over the folds (not their sum).

    Args:
        template: the built registry model, at the initial weights every fold starts from.
        ks: folds per group, e.g. (8, 8, 3). cfg: the training config (seed, learning rate,
            auxiliary weights). aux: the registry's {output: (kind, weight)} of auxiliary heads.
        x: (N, ...) float32 inputs of every fold's samples, held in a variable and gathered inside
            each step, or None.
    """

    def __init__(self, template: keras.Model, ks, cfg, aux: dict | None = None, x=None):
        super().__init__(name=f"{template.name}_folded")
        from mer_keras.train.targets import aux_losses_for

        # the training inputs, gathered inside each step (not part of a checkpoint)
        object.__setattr__(self, "_x", tf.Variable(np.asarray(x, np.float32), trainable=False, name="inputs")
                           if x is not None else None)
        self.augment, self.flow_input, self.shift = bool(cfg.augment), bool(cfg.flow_input), int(cfg.shift)
        self.cutmix = bool(getattr(cfg, "cutmix", False))

        self.ks = [int(k) for k in ks]
        self.nets = [FoldedNetwork(template, k, name=f"g{g}") for g, k in enumerate(self.ks)]
        self.seed = int(cfg.seed)
        self.label_smoothing = float(cfg.label_smoothing)
        self.aux = dict(aux or {})
        self.loss_weights = aux_losses_for(self.aux, cfg.aux_weights)[1] if self.aux else {"predictions": 1.0}
        total = sum(self.ks)
        self._sums = tf.Variable(tf.zeros([4, total]), trainable=False, name="fold_sums")  # loss*n, n, correct, seen
        self.alive = tf.Variable(tf.ones([total]), trainable=False, name="alive")

    @property
    def metrics(self):
        return []

    def reset_metrics(self):
        self._sums.assign(tf.zeros_like(self._sums))

    def stop_folds(self, indices) -> None:
        """Switch folds off (numbered over the groups): their losses leave the program's loss."""
        alive = self.alive.numpy()
        alive[list(indices)] = 0.0
        self.alive.assign(alive)

    def reseed(self, epoch: int) -> None:
        for net in self.nets:
            net.reseed(self.seed, epoch)

    def call(self, inputs, training=False):
        xs, valids = inputs
        return [net(x, v, training) for net, x, v in zip(self.nets, xs, valids)]

    def _fold_losses(self, outputs: dict, y, w, n, soft=None):
        """(K,) loss of each fold of a group, and its (B, K) correct-prediction mask (against the
        labels y); with ``soft`` (B, K, C) targets, the cross-entropy is against them."""
        from mer_keras.train.targets import smoothed_crossentropy

        probs = outputs["predictions"]
        if soft is not None:
            ce = keras.losses.categorical_crossentropy(soft, probs, label_smoothing=self.label_smoothing)
        else:
            ce = smoothed_crossentropy(y, probs, self.label_smoothing)  # (B, K)
        loss = tf.reduce_sum(w * ce, axis=0) / n * self.loss_weights["predictions"]
        for name, (kind, _) in self.aux.items():
            if kind != "proposal":
                raise ValueError(f"auxiliary output {name} ({kind}) is not translated")
            onehot = tf.one_hot(y, probs.shape[-1], dtype=probs.dtype)
            bce = keras.losses.binary_crossentropy(onehot, outputs[name])  # (B, K)
            loss += tf.reduce_sum(w * bce, axis=0) / n * self.loss_weights[name]
        correct = tf.cast(tf.equal(tf.argmax(probs, axis=-1, output_type=y.dtype), y), probs.dtype)
        return loss, correct

    def inputs_of(self, index, flip, offsets, perm=None, lam=None, boxes=None):
        """(B, ..., K*C) float32: the K folds' batches gathered from the input array and laid side by
        side on the channel axis, flipped and shifted as :func:`~mer_keras.train.tfdata.training_dataset`
        flips and shifts them.

        Args:
            index: (B, K) int32 sample indices. flip: (B, K) bool. offsets: (B, K, 2) int32.
            perm, lam: mixup (:func:`~mer_keras.train.tfdata.mix`): row b of fold k becomes
                ``lam[b, k] * row b + (1 - lam[b, k]) * row perm[b, k]`` of the same fold's batch.
            perm, boxes: cut-mix (:func:`~mer_keras.train.tfdata.paste`): inside ``boxes[b, k]``
                ((B, K, 4) int32 row0, row1, col0, col1), row b of fold k takes row perm[b, k]'s pixels.
        """
        from mer_keras.train.tfdata import _shift, box_mask

        imgs = tf.gather(self._x, index)  # (B, K, ..., H, W, C)
        rank = imgs.shape.rank
        if self.augment:  # one gather of columns (w -> W-1-w where flipped), then u -> 255 - u (exact: -u + 255)
            width = imgs.shape[-2]
            cols = tf.where(flip[..., None], tf.range(width - 1, -1, -1), tf.range(width))  # (B, K, W)
            cols = tf.reshape(cols, [tf.shape(cols)[0], tf.shape(cols)[1]] + [1] * (rank - 4) + [width])
            cols = tf.broadcast_to(cols, tf.shape(imgs)[:-1])  # (B, K, ..., H, W)
            imgs = tf.gather(imgs, cols, axis=rank - 2, batch_dims=rank - 2)
            if self.flow_input:
                f = tf.cast(tf.reshape(flip, [tf.shape(flip)[0], -1] + [1] * (rank - 2)), imgs.dtype)
                channel0 = tf.one_hot(0, imgs.shape[-1], dtype=imgs.dtype)
                imgs = imgs * (1.0 - 2.0 * f * channel0) + 255.0 * f * channel0
        if self.shift:
            flat = tf.reshape(imgs, tf.concat([[-1], tf.shape(imgs)[2:]], 0))
            flat = _shift(flat, tf.reshape(offsets, [-1, 2]))
            imgs = tf.reshape(flat, tf.shape(imgs))
        if perm is not None:  # each row mixed with its partner row of the same fold, as tfdata.mix mixes
            swap = [1, 0] + list(range(2, rank))
            partner = tf.transpose(tf.gather(tf.transpose(imgs, swap), tf.transpose(perm), axis=1, batch_dims=1), swap)
            if boxes is not None:  # as tfdata.paste: the partner's pixels inside the box
                height, width = imgs.shape[-3], imgs.shape[-2]
                mask = tf.reshape(box_mask(boxes, height, width),
                                  [tf.shape(boxes)[0], -1] + [1] * (rank - 5) + [height, width, 1])
                imgs = tf.where(mask, partner, imgs)
            else:
                weight = tf.reshape(lam, [tf.shape(lam)[0], -1] + [1] * (rank - 2))
                imgs = weight * imgs + (1.0 - weight) * partner
        order = [0] + list(range(2, rank - 1)) + [1, rank - 1]  # (B, ..., K, C)
        stacked = tf.transpose(imgs, order)
        k = index.shape[1]
        return tf.reshape(stacked, [-1, *self._x.shape[1:-1], k * self._x.shape[-1]])

    def train_step(self, data):
        xs = tuple(self.inputs_of(*g[:3], *((g[7], None, g[8]) if self.cutmix else g[7:9])) for g in data)
        ys = tuple(g[3] for g in data)
        softs = tuple(g[6] if len(g) > 6 else None for g in data)  # distillation: the folds' target distributions
        ws = tuple(g[4] for g in data)
        ns = tuple(g[5] for g in data)
        valids = [tf.cast(tf.range(tf.shape(w)[0])[:, None] < tf.cast(n, tf.int32)[None], tf.float32)
                  for w, n in zip(ws, ns)]
        with tf.GradientTape() as tape:
            outputs = self((xs, valids), training=True)
            losses, corrects = zip(*[self._fold_losses(o, y, w, n, t)
                                     for o, y, w, n, t in zip(outputs, ys, ws, ns, softs)])
            loss = tf.concat(losses, 0)  # (total folds,)
            alive = self.alive > 0
            total = tf.reduce_sum(tf.where(alive, loss, tf.zeros_like(loss)))  # a diverged fold stops there
        grads = tape.gradient(total, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        n = tf.concat(ns, 0)
        correct = tf.concat([tf.reduce_sum(c * v, axis=0) for c, v in zip(corrects, valids)], 0)
        self._sums.assign_add(tf.stack([loss * n, n, correct, n]))
        return self._logs()

    def _logs(self):
        """The step's logs: the means over the folds still training, and per-fold vectors that
        :class:`FoldLogs` spreads into ``fold<i>_train_loss`` / ``fold<i>_accuracy`` at the epoch's
        end (2 K scalars every step would be 2 K more ops per step)."""
        s = self._sums
        loss = tf.math.divide_no_nan(s[0], s[1])
        accuracy = tf.math.divide_no_nan(s[2], s[3])
        alive = self.alive > 0  # the means shown are those of the folds still training
        count = tf.maximum(tf.reduce_sum(tf.cast(alive, tf.float32)), 1.0)
        return {"loss": tf.reduce_sum(tf.where(alive, loss, 0.0)) / count,
                "accuracy": tf.reduce_sum(tf.where(alive, accuracy, 0.0)) / count, "folds": count,
                "fold_losses": loss, "fold_accuracies": accuracy}

    def fold_weights(self, i: int) -> list[np.ndarray]:
        """Fold ``i``'s weights (numbered over the groups) in the order of the template's ``get_weights()``."""
        for net in self.nets:
            if i < net.k:
                return net.fold_weights(i)
            i -= net.k
        raise IndexError(f"fold {i} is not in this program")


class FoldLogs(keras.callbacks.Callback):
    """At the end of an epoch, the program's per-fold vectors as ``fold<i>_train_loss`` and
    ``fold<i>_accuracy`` (floats), what the per-fold history and the divergence check read. It must
    come first among the program's callbacks."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        losses = np.atleast_1d(np.asarray(logs.pop("fold_losses", []), np.float64))
        accuracies = np.atleast_1d(np.asarray(logs.pop("fold_accuracies", []), np.float64))
        for i, (loss, accuracy) in enumerate(zip(losses, accuracies)):
            logs[f"fold{i}_train_loss"] = float(loss)
            logs[f"fold{i}_accuracy"] = float(accuracy)
