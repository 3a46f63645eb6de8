"""Folds vectorised inside each op: K folds of a network trained by one program, at once.

TensorFlow runs a small network's convolutions (STSTNet: 3 -> 3, 5 and 8 filters on 28 x 28) as
tiny ops at a few per cent of the CPU's matrix-product rate, and K copies of the network in one
Keras model are still K sets of tiny ops. Here the fold is an axis *inside* each op:

* activations of K folds are laid side by side on the channel axis, fold-major: a tensor of one
  fold (B, H, W, C) is (B, H, W, K*C) for K folds, sample b of each fold at batch index b;
* a convolution is one grouped convolution whose K groups are the folds (kernel
  (kh, kw, C_in, K*F)); a dense layer one batched product over folds (weights (K, D, U));
  pooling, activations and element-wise merges act on the stacked channels as they are;
  batch normalization keeps per-fold statistics over each fold's own samples; dropout draws
  each fold's mask from the fold's own generator, as the fold trained alone draws it;
* each fold gets its own batches (order, flips, class weights: its own
  :func:`~mer_keras.train.tfdata.training_dataset`), padded to the batch size with samples of
  weight 0 where a fold's last batch is shorter; its loss is its own samples' weighted
  cross-entropy over its own batch size, and the program's loss is the sum over folds, so a
  fold's gradient is its own and Adam's per-element update is the one it gets alone;
* several groups of K folds (G) run in one program (one ``tf.function`` per step).

A fold's result equals that of the fold trained alone (:class:`mer_keras.train.fit.FoldTrainer`)
up to float rounding: a grouped convolution and a batched product sum in other orders than the
single-fold kernels (tests/unit/test_vectorized.py bounds the difference). Measured speed:
docs/BENCHMARKS.md, "The LOSO loop".

The trained folds are extracted as ordinary tf_keras models of the registry
(:meth:`FoldedModel.fold_weights`), so saving, export, TFLite, QAT, explain and the edge runner
see the models they always saw.

Layers handled: InputLayer, Rescaling, Conv2D (grouped too), Dense, BatchNormalization,
MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D, Flatten,
Concatenate, Add, Subtract, Multiply, Average, Maximum, Minimum, Activation, ReLU, LeakyReLU,
Softmax, Dropout, ChannelSlice. A model with any other layer (HTNet's attention and layer
normalization, the AU-multitask ConvLSTM's time-distributed blocks) trains one fold at a time
(:func:`unsupported_layers` names them).
"""

from __future__ import annotations

import numpy as np

from mer_keras._keras import keras, tf

L = keras.layers

#: Layer classes the folded program translates.
SUPPORTED = ("InputLayer", "Rescaling", "Conv2D", "Dense", "BatchNormalization", "MaxPooling2D", "AveragePooling2D",
             "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Flatten", "Concatenate", "Add", "Subtract", "Multiply",
             "Average", "Maximum", "Minimum", "Activation", "ReLU", "LeakyReLU", "Softmax", "Dropout", "ChannelSlice")


def unsupported_layers(model: keras.Model) -> list[str]:
    """``name (Class)`` of every layer of ``model`` the folded program cannot translate ([] if none)."""
    out = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind not in SUPPORTED:
            out.append(f"{layer.name} ({kind})")
        elif kind == "Conv2D" and (layer.data_format != "channels_last"):
            out.append(f"{layer.name} (Conv2D channels_first)")
        elif kind == "Concatenate" and layer.axis not in (-1, len(layer.output_shape) - 1):
            out.append(f"{layer.name} (Concatenate on axis {layer.axis})")
        elif kind == "BatchNormalization" and tuple(np.atleast_1d(layer.axis)) not in ((-1,), (len(layer.input_shape)
                                                                                              - 1,)):
            out.append(f"{layer.name} (BatchNormalization on axis {layer.axis})")
    return out


def _split(x, k: int):
    """(..., K*C) -> (..., K, C)."""
    shape = tf.shape(x)
    c = x.shape[-1] // k
    return tf.reshape(x, tf.concat([shape[:-1], [k, c]], 0))


def _merge(x):
    """(..., K, C) -> (..., K*C)."""
    shape = tf.shape(x)
    return tf.reshape(x, tf.concat([shape[:-2], [x.shape[-2] * x.shape[-1]]], 0))


class FoldedNetwork(tf.Module):
    """One group of K folds of a functional tf_keras model, with its own stacked variables.

    Args:
        template: the built, initialised registry model (every fold starts from its weights).
        k: folds in the group (K >= 1). name: prefix of the variables (``g0``...).
    Raises:
        ValueError: a layer the program cannot translate (see :func:`unsupported_layers`).
    """

    def __init__(self, template: keras.Model, k: int, name: str = "g0"):
        super().__init__(name=name)
        bad = unsupported_layers(template)
        if bad:
            raise ValueError(f"{template.name}: layers the folded program cannot translate: {', '.join(bad)}")
        from mer_keras.train.callbacks import random_layers

        self.k = int(k)
        object.__setattr__(self, "vars", {})  # {layer: {what: variable}}, untracked: the list below is
        generators: dict[str, list] = {}
        for layer in template.layers:
            self._make_variables(layer)
            if type(layer).__name__ == "Dropout":
                generators[layer.name] = [tf.random.Generator.from_seed(0) for _ in range(self.k)]
        # what a checkpoint holds: the variables, in a list assigned once (the template and the
        # dropout generators, reseeded every epoch, are not part of it)
        self.weights_list = [v for layer in self.vars.values() for v in layer.values()]
        object.__setattr__(self, "_untracked", {  # plain attribute: no tracking, no checkpoint
            "template": template, "generators": generators,
            # dropout layers in the order the fold trained alone numbers its random layers
            "random_order": [layer.name for layer in random_layers(template)]})

    @property
    def template(self) -> keras.Model:
        return self._untracked["template"]

    @property
    def generators(self) -> dict:
        return self._untracked["generators"]

    @property
    def random_order(self) -> list:
        return self._untracked["random_order"]

    # -- variables ------------------------------------------------------------------------------
    def _variable(self, layer, what: str, value: np.ndarray, trainable: bool) -> None:
        self.vars.setdefault(layer.name, {})[what] = tf.Variable(
            value, trainable=trainable, name=f"{self.name}/{layer.name}/{what}", dtype=tf.float32)

    def _make_variables(self, layer) -> None:
        kind, k = type(layer).__name__, self.k
        trainable = layer.trainable
        if kind == "Conv2D":
            self._variable(layer, "kernel", np.tile(layer.kernel.numpy(), (1, 1, 1, k)), trainable)
            if layer.use_bias:
                self._variable(layer, "bias", np.tile(layer.bias.numpy(), k), trainable)
        elif kind == "Dense":
            self._variable(layer, "kernel", np.stack([layer.kernel.numpy()] * k), trainable)
            if layer.use_bias:
                self._variable(layer, "bias", np.stack([layer.bias.numpy()] * k), trainable)
        elif kind == "BatchNormalization":
            for what in ("gamma", "beta"):
                w = getattr(layer, what)
                if w is not None:
                    self._variable(layer, what, np.tile(w.numpy(), k), trainable)
            for what in ("moving_mean", "moving_variance"):
                self._variable(layer, what, np.tile(getattr(layer, what).numpy(), k), False)

    def reseed(self, seed: int, epoch: int) -> None:
        """Reset every fold's dropout generators as :class:`~mer_keras.train.callbacks.EpochSeeds`
        resets the random layers of a fold trained alone at the start of ``epoch``."""
        for j, name in enumerate(self.random_order):
            for generator in self.generators.get(name, []):
                generator.reset_from_seed(int(seed) * 1_000_003 + int(epoch) * 1_009 + j)

    def fold_weights(self, j: int) -> list[np.ndarray]:
        """Fold ``j``'s weights in the order of ``template.get_weights()``."""
        out = []
        for layer in self.template.layers:
            kind, v = type(layer).__name__, self.vars.get(layer.name, {})
            if kind == "Conv2D":
                f = layer.filters
                out.append(v["kernel"].numpy()[..., j * f:(j + 1) * f])
                if layer.use_bias:
                    out.append(v["bias"].numpy()[j * f:(j + 1) * f])
            elif kind == "Dense":
                out.append(v["kernel"].numpy()[j])
                if layer.use_bias:
                    out.append(v["bias"].numpy()[j])
            elif kind == "BatchNormalization":
                c = v["moving_mean"].shape[0] // self.k
                for what in ("gamma", "beta", "moving_mean", "moving_variance"):
                    if what in v:
                        out.append(v[what].numpy()[j * c:(j + 1) * c])
            else:
                assert not layer.weights, f"{layer.name}: weights of an untranslated layer"
        return out

    # -- forward ----------------------------------------------------------------------------------
    def __call__(self, x, valid, training: bool):
        """Forward pass of the K folds.

        Args:
            x: (B, ..., K*C) float32, fold-major channels. valid: (B, K) float32, 1 for a fold's
                real samples, 0 for padding (batch normalization's statistics ignore padding).
            training: dropout and batch statistics on.
        Returns:
            {output name: (B, K, D) float32} for every output of the template (``predictions``
            for a single-output model).
        """
        values: dict[int, tf.Tensor] = {}
        for kt in tf.nest.flatten(self.template.inputs):
            values[id(kt)] = x

        def value(kt):
            key = id(kt)
            if key not in values:
                layer, node_index, _ = kt._keras_history
                node = layer._inbound_nodes[node_index]
                inputs = [value(t) for t in node.keras_inputs]
                values[key] = self._apply(layer, inputs, valid, training)
            return values[key]

        nested = self.template._nested_outputs
        pairs = list(nested.items()) if isinstance(nested, dict) else [("predictions", tf.nest.flatten(nested)[0])]
        return {name: _split(value(kt), self.k) for name, kt in pairs}

    def _apply(self, layer, inputs, valid, training):
        kind, k, v = type(layer).__name__, self.k, self.vars.get(layer.name, {})
        x = inputs[0]
        if kind == "Rescaling":
            return x * tf.cast(layer.scale, x.dtype) + tf.cast(layer.offset, x.dtype)
        if kind == "Conv2D":
            y = tf.nn.convolution(x, v["kernel"], strides=list(layer.strides), padding=layer.padding.upper(),
                                  dilations=list(layer.dilation_rate), data_format="NHWC")
            if layer.use_bias:
                y = tf.nn.bias_add(y, v["bias"], data_format="NHWC")
            return layer.activation(y)
        if kind == "Dense":
            if x.shape.rank != 2:
                raise ValueError(f"{layer.name}: Dense on a rank-{x.shape.rank} input is not translated")
            y = tf.einsum("bkd,kdu->bku", _split(x, k), v["kernel"])
            if layer.use_bias:
                y = y + v["bias"][None]
            return _merge(layer.activation(y))
        if kind == "BatchNormalization":
            return self._batch_norm(layer, x, valid, training, v)
        if kind in ("MaxPooling2D", "AveragePooling2D"):
            pool = tf.nn.max_pool2d if kind == "MaxPooling2D" else tf.nn.avg_pool2d
            return pool(x, list(layer.pool_size), list(layer.strides), layer.padding.upper(), data_format="NHWC")
        if kind in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
            reduce = tf.reduce_mean if kind == "GlobalAveragePooling2D" else tf.reduce_max
            return reduce(x, axis=[1, 2], keepdims=bool(layer.keepdims))
        if kind == "Flatten":  # per fold in its own (H, W, C) order
            rank = x.shape.rank
            folded = _split(x, k)  # (B, ..., K, C)
            perm = [0, rank - 1] + list(range(1, rank - 1)) + [rank]
            return tf.reshape(tf.transpose(folded, perm), [-1, int(np.prod(x.shape[1:]))])
        if kind == "Concatenate":
            return _merge(tf.concat([_split(t, k) for t in inputs], axis=-1))
        if kind in ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"):
            parts = [_split(t, k) for t in inputs]  # a (..., 1)-channel input broadcasts within its fold
            out = parts[0]
            for p in parts[1:]:
                out = {"Add": tf.add, "Subtract": tf.subtract, "Multiply": tf.multiply, "Average": tf.add,
                       "Maximum": tf.maximum, "Minimum": tf.minimum}[kind](out, p)
            if kind == "Average":
                out = out / len(parts)
            return _merge(out)
        if kind == "Activation":
            if layer.activation in (keras.activations.softmax,):
                return _merge(layer.activation(_split(x, k)))
            return layer.activation(x)
        if kind in ("ReLU", "LeakyReLU"):
            return layer(x)
        if kind == "Softmax":
            return _merge(tf.nn.softmax(_split(x, k), axis=-1))
        if kind == "Dropout":
            return self._dropout(layer, x, training)
        if kind == "ChannelSlice":
            return _merge(_split(x, k)[..., layer.start:layer.stop])
        raise ValueError(f"{layer.name} ({kind}) is not translated")

    def _dropout(self, layer, x, training):
        if not training or layer.rate == 0:
            return x
        parts = tf.split(x, self.k, axis=-1)
        out = [tf.nn.experimental.general_dropout(p, rate=layer.rate, noise_shape=layer._get_noise_shape(p),
                                                  uniform_sampler=g.uniform)
               for p, g in zip(parts, self.generators[layer.name])]
        return tf.concat(out, axis=-1)

    def _batch_norm(self, layer, x, valid, training, v):
        """Per-fold batch normalization: statistics over each fold's own samples (and positions),
        the moving averages updated with the unbiased variance, as tf_keras' fused layer does."""
        k = self.k
        gamma = v.get("gamma")
        beta = v.get("beta")
        if not training or not layer.trainable:
            mean, var = v["moving_mean"], v["moving_variance"]
        else:
            axes = list(range(x.shape.rank - 1))
            xs = _split(x, k)  # (B, ..., K, C)
            shape = [-1] + [1] * (x.shape.rank - 2) + [k, 1]
            w = tf.reshape(valid, shape)
            positions = tf.cast(tf.reduce_prod(tf.shape(x)[1:-1]), x.dtype)
            count = tf.reduce_sum(valid, axis=0) * positions  # (K,)
            mean_kc = tf.reduce_sum(xs * w, axis=axes) / count[:, None]  # (K, C)
            centred = (xs - mean_kc) * w
            var_kc = tf.reduce_sum(centred * centred, axis=axes) / count[:, None]
            mean, var = tf.reshape(mean_kc, [-1]), tf.reshape(var_kc, [-1])
            unbiased = var_kc * (count / tf.maximum(count - 1.0, 1.0))[:, None]
            m = layer.momentum
            v["moving_mean"].assign(v["moving_mean"] * m + mean * (1.0 - m))
            v["moving_variance"].assign(v["moving_variance"] * m + tf.reshape(unbiased, [-1]) * (1.0 - m))
        return tf.nn.batch_normalization(x, mean, var, beta, gamma, layer.epsilon)


class FoldedModel(keras.Model):
    """G groups of K folds trained by one Keras ``fit``: one step of the program is one step of
    every fold.

    Each step's data is, per group, ``(x, y, w, n)``: x (B, ..., K*C) the folds' batches side by
    side, y (B, K) int labels, w (B, K) float32 loss weights (class weights; 0 for padding), n (K,)
    float32 the folds' own batch sizes. The loss of fold j is ``sum_b w[b, j] CE[b, j] / n[j]``
    (tf_keras' ``sum_over_batch_size`` on the fold's own batch), plus its auxiliary losses with
    their weights; the program minimises the sum over folds.

    Logs per epoch: ``fold<i>_train_loss`` and ``fold<i>_accuracy`` for fold i (numbered over the
    groups, group by group), and ``loss`` / ``accuracy``, their means over the folds (not their sum).

    Args:
        template: the built registry model, at the initial weights every fold starts from.
        ks: folds per group, e.g. (8, 8, 3). cfg: the training config (seed, learning rate,
            auxiliary weights). aux: the registry's {output: (kind, weight)} of auxiliary heads.
    """

    def __init__(self, template: keras.Model, ks, cfg, aux: dict | None = None, lr: float | None = None):
        super().__init__(name=f"{template.name}_folded")
        from mer_keras.train.targets import aux_losses_for

        self.ks = [int(k) for k in ks]
        self.nets = [FoldedNetwork(template, k, name=f"g{g}") for g, k in enumerate(self.ks)]
        self.seed = int(cfg.seed)
        self.aux = dict(aux or {})
        self.loss_weights = aux_losses_for(self.aux, cfg.aux_weights)[1] if self.aux else {"predictions": 1.0}
        total = sum(self.ks)
        self._sums = tf.Variable(tf.zeros([4, total]), trainable=False, name="fold_sums")  # loss*n, n, correct, seen
        self.alive = tf.Variable(tf.ones([total]), trainable=False, name="alive")
        self._lr = lr

    @property
    def metrics(self):
        return []

    def reset_metrics(self):
        self._sums.assign(tf.zeros_like(self._sums))

    def reseed(self, epoch: int) -> None:
        for net in self.nets:
            net.reseed(self.seed, epoch)

    def call(self, inputs, training=False):
        xs, valids = inputs
        return [net(x, v, training) for net, x, v in zip(self.nets, xs, valids)]

    def _fold_losses(self, outputs: dict, y, w, n):
        """(K,) loss of each fold of a group, and its (B, K) correct-prediction mask."""
        probs = outputs["predictions"]
        ce = keras.losses.sparse_categorical_crossentropy(y, probs)  # (B, K)
        loss = tf.reduce_sum(w * ce, axis=0) / n * self.loss_weights["predictions"]
        for name, (kind, _) in self.aux.items():
            if kind != "proposal":
                raise ValueError(f"auxiliary output {name} ({kind}) is not translated")
            onehot = tf.one_hot(y, probs.shape[-1], dtype=probs.dtype)
            bce = keras.losses.binary_crossentropy(onehot, outputs[name])  # (B, K)
            loss += tf.reduce_sum(w * bce, axis=0) / n * self.loss_weights[name]
        correct = tf.cast(tf.equal(tf.argmax(probs, axis=-1, output_type=y.dtype), y), probs.dtype)
        return loss, correct

    def train_step(self, data):
        xs, ys, ws, ns = data
        valids = [tf.cast(tf.range(tf.shape(w)[0])[:, None] < tf.cast(n, tf.int32)[None], tf.float32)
                  for w, n in zip(ws, ns)]
        with tf.GradientTape() as tape:
            outputs = self((xs, valids), training=True)
            losses, corrects = zip(*[self._fold_losses(o, y, w, n) for o, y, w, n in zip(outputs, ys, ws, ns)])
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
        s = self._sums
        loss = tf.math.divide_no_nan(s[0], s[1])
        accuracy = tf.math.divide_no_nan(s[2], s[3])
        alive = self.alive > 0  # the means shown are those of the folds still training
        count = tf.maximum(tf.reduce_sum(tf.cast(alive, tf.float32)), 1.0)
        logs = {"loss": tf.reduce_sum(tf.where(alive, loss, 0.0)) / count,
                "accuracy": tf.reduce_sum(tf.where(alive, accuracy, 0.0)) / count, "folds": count}
        for i in range(sum(self.ks)):
            logs[f"fold{i}_train_loss"] = loss[i]
            logs[f"fold{i}_accuracy"] = accuracy[i]
        return logs

    def fold_weights(self, i: int) -> list[np.ndarray]:
        """Fold ``i``'s weights (numbered over the groups) in the order of the template's ``get_weights()``."""
        for net in self.nets:
            if i < net.k:
                return net.fold_weights(i)
            i -= net.k
        raise IndexError(f"fold {i} is not in this program")


def folded_dataset(xs, ys, cfg, num_classes: int, ks, start_epoch: int = 0):
    """The program's batches: per step, per group, the K folds' batches side by side.

    Fold ``j``'s stream is its own :func:`~mer_keras.train.tfdata.training_dataset` (the batches,
    order, flips and shifts it has alone) with its own balanced class weights, padded to
    ``cfg.batch_size`` with weight-0 samples where its last batch is shorter.

    Args:
        xs, ys: one training set per fold, (N_j, ...) float32 in [0, 255] and (N_j,) int, in the
            order of the groups; every N_j gives the same steps per epoch. ks: folds per group.
    Returns:
        (dataset of ((x_g...), (y_g...), (w_g...), (n_g...)) per step, steps per epoch).
    Raises:
        ValueError: the sets give different steps per epoch, or ``ks`` does not add up to them.
    """
    from mer_keras.data.weights import balanced_class_weight
    from mer_keras.train.tfdata import training_dataset

    steps = {-(-len(x) // cfg.batch_size) for x in xs}
    if len(steps) != 1 or sum(ks) != len(xs):
        raise ValueError(f"training sets of {[len(x) for x in xs]} samples give steps per epoch {sorted(steps)} "
                         f"for groups {list(ks)}: folds trained together need equal steps")
    b = cfg.batch_size
    parts = []
    for x, y in zip(xs, ys):
        cw = balanced_class_weight(y, num_classes) if cfg.class_weight else None
        w = np.array([cw[int(c)] for c in y], np.float32) if cw else np.ones(len(y), np.float32)
        ds, n_steps = training_dataset(x, y, b, cfg.epochs, cfg.seed, cfg.augment, cfg.flow_input, sample_weight=w,
                                       start_epoch=start_epoch, shift=cfg.shift)
        parts.append(ds)
    bounds = np.cumsum([0, *ks])

    def pad(t):
        extra = b - tf.shape(t)[0]
        return tf.pad(t, [[0, extra]] + [[0, 0]] * (t.shape.rank - 1))

    def regroup(*batches):
        out_x, out_y, out_w, out_n = [], [], [], []
        for g in range(len(ks)):
            group = batches[bounds[g]:bounds[g + 1]]
            out_x.append(tf.concat([pad(xb) for xb, _, _ in group], axis=-1))
            out_y.append(tf.stack([pad(tf.cast(yb, tf.int64)) for _, yb, _ in group], axis=1))
            out_w.append(tf.stack([pad(wb) for _, _, wb in group], axis=1))
            out_n.append(tf.stack([tf.cast(tf.shape(yb)[0], tf.float32) for _, yb, _ in group]))
        return tuple(out_x), tuple(out_y), tuple(out_w), tuple(out_n)

    return tf.data.Dataset.zip(tuple(parts)).map(regroup).prefetch(tf.data.AUTOTUNE), n_steps


class _Reseed(keras.callbacks.Callback):
    """Each epoch, every fold's dropout generators reset as the fold alone resets them."""

    def __init__(self, program: FoldedModel):
        super().__init__()
        self.program = program

    def on_epoch_begin(self, epoch, logs=None):
        self.program.reseed(epoch)


class FoldDivergence(keras.callbacks.Callback):
    """A fold whose training loss becomes NaN or infinite stops; the other folds of its program go on.

    At the end of each epoch, every fold of the program whose ``fold<i>_train_loss`` is not finite
    is switched off (its loss no longer enters the program's loss, so its weights stop changing
    and cannot reach another fold's) and recorded with its epoch. It must come first among the
    program's callbacks, before anything writes the epoch.

    Args:
        program: the :class:`FoldedModel`. labels: per fold, its name (``fold sub01``). epochs: the fit's.
    Attributes:
        diverged: {fold index: (epoch (1-based), loss value)}.
    """

    def __init__(self, program: FoldedModel, labels, epochs: int):
        super().__init__()
        self.program, self.labels, self.epochs = program, list(labels), int(epochs)
        self.diverged: dict[int, tuple[int, float]] = {}

    def on_epoch_end(self, epoch, logs=None):
        import math

        logs = logs or {}
        alive = self.program.alive.numpy()
        for i in range(len(self.labels)):
            value = logs.get(f"fold{i}_train_loss")
            if i not in self.diverged and value is not None and not math.isfinite(float(value)):
                self.diverged[i] = (epoch + 1, float(value))
                alive[i] = 0.0
        self.program.alive.assign(alive)
        for i in self.diverged:  # what a stopped fold shows from then on: not a figure
            logs.pop(f"fold{i}_train_loss", None)
            logs.pop(f"fold{i}_accuracy", None)
        if self.diverged and len(self.diverged) == len(self.labels):
            self.model.stop_training = True


class _HoldoutPredictions(keras.callbacks.Callback):
    """At chosen epochs, each fold's held-out samples predicted with the fold's weights then."""

    def __init__(self, program: FoldedModel, plain: keras.Model, holdouts, epochs):
        super().__init__()
        self.program, self.plain, self.holdouts, self.epochs = program, plain, list(holdouts), {int(e) for e in epochs}
        self.probabilities = [{} for _ in self.holdouts]

    def on_epoch_end(self, epoch, logs=None):
        from mer_keras.models.inference import predict_proba

        if epoch + 1 not in self.epochs:
            return
        for i, x in enumerate(self.holdouts):
            self.plain.set_weights(self.program.fold_weights(i))
            self.probabilities[i][epoch + 1] = predict_proba(self.plain, x)


def grouped_convolution_works() -> bool:
    """Whether this TensorFlow computes a grouped convolution's gradients on this device.

    On CPU, TensorFlow has grouped-convolution kernels only through oneDNN: with
    ``TF_ENABLE_ONEDNN_OPTS=0`` the weight gradient fails. Probed once per process on a 1 x 4 x 4
    input of 2 groups.
    """
    if "grouped" not in _PROBE:
        try:
            x = tf.ones([1, 4, 4, 2])
            w = tf.Variable(tf.ones([3, 3, 1, 2]))
            with tf.GradientTape() as tape:
                y = tf.reduce_sum(tf.nn.convolution(x, w, padding="SAME"))
            _PROBE["grouped"] = tape.gradient(y, w) is not None
        except (tf.errors.OpError, ValueError, NotImplementedError):
            _PROBE["grouped"] = False
    return _PROBE["grouped"]


_PROBE: dict = {}


class VectorizedTrainer:
    """Trains programs of folds: G groups of K folds each in one Keras ``fit`` (:class:`FoldedModel`).

    The registry model is built once, seeded as :class:`mer_keras.train.fit.FoldTrainer` builds it
    (``keras.utils.set_random_seed(cfg.seed)``, the builder, ``--init-from``), and every fold of
    every program starts from its weights with a fresh Adam state.

    Args:
        input_shape: one sample's shape. num_classes: softmax width. cfg: the training config.
    Raises:
        ValueError: the model has layers the program cannot translate (:func:`unsupported_layers`).
    """

    def __init__(self, input_shape, num_classes: int, cfg):
        from mer_keras.registry import create_model, get_spec
        from mer_keras.train.determinism import set_determinism
        from mer_keras.train.timing import phase

        self.cfg, self.num_classes, self.input_shape = cfg, int(num_classes), tuple(input_shape)
        self.aux = get_spec(cfg.model).aux_losses
        set_determinism(cfg.deterministic)
        with phase("build"):
            keras.utils.set_random_seed(cfg.seed)
            self.template = create_model(cfg.model, num_classes, input_shape=self.input_shape, **cfg.model_options)
            if cfg.init_from:
                from mer_keras.train.transfer import initialise_from

                initialise_from(self.template, cfg.init_from, cfg.freeze_until)
            self.initial = self.template.get_weights()
            self.plain = create_model(cfg.model, num_classes, input_shape=self.input_shape, **cfg.model_options)
        bad = unsupported_layers(self.template)
        if bad:
            raise ValueError(f"{cfg.model}: layers the folded program cannot translate: {', '.join(bad)}")

    def fold_model(self, weights) -> keras.Model:
        """The ordinary registry model (one reused instance) holding ``weights``."""
        self.plain.set_weights(weights)
        return self.plain

    def fit(self, xs, ys, ks, callbacks=(), backup_dir=None, labels=None, holdouts=None, checkpoints=None):
        """Train fold ``i`` on (xs[i], ys[i]) for ``cfg.epochs`` epochs, all folds in one program.

        Args:
            xs, ys: the folds' training sets ((N_i, ...) float32 in [0, 255], (N_i,) int), every N_i
                giving the same steps per epoch. ks: folds per group (sum = number of folds).
            callbacks: extra Keras callbacks (progress, per-fold history with prefixes ``fold<i>_``).
            backup_dir: the program's training backup (Keras ``BackupAndRestore``), or None.
            labels: per fold its name in messages (``fold sub01``).
            holdouts, checkpoints: per fold (n_i, ...) held-out inputs predicted after each epoch
                count of ``checkpoints`` (nested selection).
        Returns:
            Per fold ``{"weights": list of arrays (the template's order), "final_loss",
            "final_accuracy": floats or None, "diverged": message or None, "checkpoints":
            {epoch: (n_i, K) probabilities}}``.
        Raises:
            DataError: an input holds NaN or infinite values (before any training).
            RunFolderError: an unreadable backup.
        """
        from mer_keras.data.checks import check_finite_inputs
        from mer_keras.train.callbacks import EpochTiming, PeriodicBackupAndRestore, divergence_message
        from mer_keras.train.fit import backup_epoch, learning_rate, remove_fit_backup
        from mer_keras.train.timing import EpochClock, phase

        cfg = self.cfg
        labels = list(labels) if labels is not None else [f"fold {i}" for i in range(len(xs))]
        for label, x in zip(labels, xs):
            check_finite_inputs(x, label)
        keras.utils.set_random_seed(cfg.seed)
        self.template.set_weights(self.initial)
        with phase("build"):
            program = FoldedModel(self.template, ks, cfg, aux=self.aux)
            program.compile(optimizer=keras.optimizers.Adam(learning_rate(cfg)))
        start = backup_epoch(backup_dir) if backup_dir else 0
        with phase("dataset"):
            ds, steps = folded_dataset(xs, ys, cfg, self.num_classes, ks, start_epoch=start)
        clock = EpochClock(sum(len(x) for x in xs))
        divergence = FoldDivergence(program, labels, cfg.epochs)
        fit_callbacks = [divergence, _Reseed(program), EpochTiming(clock)]
        if backup_dir:
            fit_callbacks.append(PeriodicBackupAndRestore(str(backup_dir), 60.0 * cfg.backup_minutes))
        keep = None
        if checkpoints:
            keep = _HoldoutPredictions(program, self.plain, holdouts, checkpoints)
            fit_callbacks.append(keep)
        keras.utils.set_random_seed(cfg.seed)
        history = program.fit(ds, epochs=cfg.epochs, steps_per_epoch=steps, verbose=0,
                              callbacks=[*fit_callbacks, *callbacks])
        clock.close()
        remove_fit_backup(backup_dir, program.distribute_strategy)
        out = []
        for i, label in enumerate(labels):
            weights = program.fold_weights(i)
            message = None
            if i in divergence.diverged:
                epoch, value = divergence.diverged[i]
                message = divergence_message(label, f"the training loss is {value}", epoch, cfg.epochs,
                                             learning_rate(cfg))
            elif not all(np.isfinite(w).all() for w in weights):  # the last step's update
                message = divergence_message(label, "the weights became NaN or infinite", cfg.epochs, cfg.epochs,
                                             learning_rate(cfg))
            loss = history.history.get(f"fold{i}_train_loss")
            acc = history.history.get(f"fold{i}_accuracy")
            out.append({"weights": weights, "final_loss": float(loss[-1]) if loss and message is None else None,
                        "final_accuracy": float(acc[-1]) if acc and message is None else None,
                        "diverged": message, "checkpoints": keep.probabilities[i] if keep else {}})
        return out
