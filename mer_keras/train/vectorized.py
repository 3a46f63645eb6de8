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
docs/BENCHMARKS.md, "The LOSO engine".

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


def _config(layer) -> dict:
    return {k: v for k, v in layer.get_config().items() if k not in ("name", "trainable", "filters", "dtype",
                                                                      "kernel_initializer", "bias_initializer")}


def _graph(template: keras.Model) -> tuple[dict[str, list], set[str]]:
    """({layer name: the layers that take its output}, names of the layers whose outputs are the model's)."""
    consumers: dict[str, list] = {}
    for layer in template.layers:
        for node in layer._inbound_nodes:
            for kt in node.keras_inputs:
                consumers.setdefault(kt._keras_history[0].name, []).append(layer)
    return consumers, {kt._keras_history[0].name for kt in tf.nest.flatten(template._nested_outputs)}


def branch_fusions(template: keras.Model) -> list[dict]:
    """Parallel branches the program computes as one: convolutions of one input, each followed by
    the same chain of per-channel layers (pooling, activations), concatenated on the channel axis
    (STSTNet's three streams). One convolution with all their filters, then the chain once, gives
    the concatenation: fewer, larger ops. Each output channel is the same dot product as before.

    Returns:
        Per fusion: {"concat": the Concatenate layer's name, "convs": the branch convolutions in
        concatenation order, "chain": the layers after the first branch's convolution, "input": the
        shared input (KerasTensor)}.
    """
    users, outputs = _graph(template)
    consumers = {name: len(layers) for name, layers in users.items()}
    fusions = []
    for concat in template.layers:
        if type(concat).__name__ != "Concatenate" or concat.axis not in (-1, len(concat.output_shape) - 1):
            continue
        chains = []
        for kt in concat._inbound_nodes[0].keras_inputs:
            chain, layer = [], kt._keras_history[0]
            while type(layer).__name__ != "Conv2D":
                if layer.weights or consumers.get(layer.name) != 1 or layer.name in outputs or \
                        len(layer._inbound_nodes[0].keras_inputs) != 1:
                    break
                chain.insert(0, layer)
                layer = layer._inbound_nodes[0].keras_inputs[0]._keras_history[0]
            else:
                if consumers.get(layer.name) == 1 and layer.name not in outputs:
                    chains.append((layer, chain))
                    continue
            chains = []
            break
        if len(chains) < 2:
            continue
        convs = [c for c, _ in chains]
        first_input = convs[0]._inbound_nodes[0].keras_inputs[0]
        same = all(c._inbound_nodes[0].keras_inputs[0] is first_input and _config(c) == _config(convs[0])
                   and c.trainable == convs[0].trainable and c.groups == 1 for c in convs)
        same = same and all(len(ch) == len(chains[0][1]) and all(
            type(a) is type(b) and _config(a) == _config(b) for a, b in zip(ch, chains[0][1])) for _, ch in chains)
        if same:
            fusions.append({"concat": concat.name, "convs": convs, "chain": chains[0][1], "input": first_input})
    return fusions


#: Folds per group of a program: one grouped convolution holds this many folds. 8 kept the
#: activations in cache and ran fastest in the prototype (STSTNet, 2 cores: 12.6-13.5 ms per
#: fold-epoch with 8 per group, 18.2-18.7 with all 69 in one; docs/BENCHMARKS.md).
FOLDS_PER_GROUP = 8


def program_groups(n: int, per_group: int = FOLDS_PER_GROUP) -> list[int]:
    """Folds per group of a program of ``n`` folds: groups of at most ``per_group``, as even as
    possible (``20`` -> ``[7, 7, 6]``)."""
    groups = -(-n // per_group)
    base, extra = divmod(n, groups)
    return [base + (i < extra) for i in range(groups)]


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
        fusions = branch_fusions(template)
        fused = {c.name for f in fusions for c in f["convs"]}
        for f in fusions:  # one kernel of every branch's filters, per fold [branch 1 | branch 2 | ...]
            kernel = np.concatenate([c.kernel.numpy() for c in f["convs"]], axis=-1)
            self._variable(f["concat"], "kernel", np.tile(kernel, (1, 1, 1, self.k)), f["convs"][0].trainable)
            if f["convs"][0].use_bias:
                bias = np.concatenate([c.bias.numpy() for c in f["convs"]])
                self._variable(f["concat"], "bias", np.tile(bias, self.k), f["convs"][0].trainable)
        for layer in template.layers:
            if layer.name not in fused:
                self._make_variables(layer)
            if type(layer).__name__ == "Dropout":
                generators[layer.name] = [tf.random.Generator.from_seed(0) for _ in range(self.k)]
        # convolutions whose only consumer is a max pooling: bias and ReLU after the pooling, on 1/9
        # of the values (max(x + b) = max(x) + b and max(relu(x)) = relu(max(x)) exactly: adding a
        # constant and a ReLU are monotonic, in float as in exact arithmetic)
        consumers, outputs = _graph(template)
        deferred = set()
        for layer in template.layers:
            users = consumers.get(layer.name, [])
            if (type(layer).__name__ == "Conv2D" and layer.name not in outputs and len(users) == 1
                    and type(users[0]).__name__ == "MaxPooling2D"
                    and layer.activation in (keras.activations.relu, keras.activations.linear)):
                deferred.add(layer.name)
        # what a checkpoint holds: the variables, in a list assigned once (the template and the
        # dropout generators, reseeded every epoch, are not part of it)
        self.weights_list = [v for layer in self.vars.values() for v in layer.values()]
        object.__setattr__(self, "_untracked", {  # plain attribute: no tracking, no checkpoint
            "template": template, "generators": generators, "deferred": deferred - fused,
            "fusions": {f["concat"]: f for f in fusions},
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
        name = layer if isinstance(layer, str) else layer.name
        self.vars.setdefault(name, {})[what] = tf.Variable(
            value, trainable=trainable, name=f"{self.name}/{name}/{what}", dtype=tf.float32)

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
        where = {}  # fused convolution -> (its fusion's variables, its first filter within a fold, filters per fold)
        for name, fusion in self._untracked["fusions"].items():
            total, start = sum(c.filters for c in fusion["convs"]), 0
            for c in fusion["convs"]:
                where[c.name] = (self.vars[name], j * total + start, c.filters)
                start += c.filters
        for layer in self.template.layers:
            kind, v = type(layer).__name__, self.vars.get(layer.name, {})
            if layer.name in where:
                fv, first, f = where[layer.name]
                out.append(fv["kernel"].numpy()[..., first:first + f])
                if layer.use_bias:
                    out.append(fv["bias"].numpy()[first:first + f])
            elif kind == "Conv2D":
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

        pending: dict[int, object] = {}  # a deferred convolution's output -> its layer (bias, activation to come)

        def value(kt):
            key = id(kt)
            if key not in values:
                layer, node_index, _ = kt._keras_history
                node = layer._inbound_nodes[node_index]
                fusion = self._untracked["fusions"].get(layer.name)
                if fusion is not None:  # the branches as one convolution and one chain
                    conv, chain, fv = fusion["convs"][0], list(fusion["chain"]), self.vars[layer.name]
                    defer = bool(chain) and type(chain[0]).__name__ == "MaxPooling2D" and conv.activation in (
                        keras.activations.relu, keras.activations.linear)  # as for a single convolution, below
                    y = self._convolve(conv, value(fusion["input"]), bias_and_activation=not defer, variables=fv)
                    if defer:
                        y = self._bias_and_activation(conv, self._apply(chain.pop(0), [y], valid, training), fv)
                    for step in chain:
                        y = self._apply(step, [y], valid, training)
                    values[key] = y
                    return y
                inputs = [value(t) for t in node.keras_inputs]
                if layer.name in self._untracked["deferred"]:
                    values[key] = self._convolve(layer, inputs[0], bias_and_activation=False)
                    pending[id(values[key])] = layer
                elif type(layer).__name__ == "MaxPooling2D" and id(inputs[0]) in pending:
                    conv = pending[id(inputs[0])]
                    pooled = self._apply(layer, inputs, valid, training)
                    values[key] = self._bias_and_activation(conv, pooled)
                else:
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
            return self._convolve(layer, x)
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

    def _convolve(self, layer, x, bias_and_activation: bool = True, variables: dict | None = None):
        """The K folds' convolution as one grouped convolution (kernel (kh, kw, C_in, K*F))."""
        v = variables if variables is not None else self.vars[layer.name]
        y = tf.nn.convolution(x, v["kernel"], strides=list(layer.strides), padding=layer.padding.upper(),
                              dilations=list(layer.dilation_rate), data_format="NHWC")
        return self._bias_and_activation(layer, y, v) if bias_and_activation else y

    def _bias_and_activation(self, layer, y, variables: dict | None = None):
        v = variables if variables is not None else self.vars[layer.name]
        if layer.use_bias:
            y = tf.nn.bias_add(y, v["bias"], data_format="NHWC")
        return layer.activation(y)

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

    def __init__(self, template: keras.Model, ks, cfg, aux: dict | None = None, lr: float | None = None,
                 x=None):
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
        self._lr = lr

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


class _Reseed(keras.callbacks.Callback):
    """Each epoch, every fold's dropout generators reset as the fold alone resets them."""

    def __init__(self, program: FoldedModel):
        super().__init__()
        self.program = program

    def on_epoch_begin(self, epoch, logs=None):
        self.program.reseed(epoch)


class _HoldoutPredictions(keras.callbacks.Callback):
    """At chosen epochs, each fold's held-out samples predicted with the fold's weights then."""

    def __init__(self, program: FoldedModel, plain: keras.Model, holdouts, epochs):
        super().__init__()
        self.program, self.plain, self.holdouts, self.epochs = program, plain, list(holdouts), {int(e) for e in epochs}
        self.probabilities = [{} for _ in self.holdouts]

    def on_epoch_end(self, epoch, logs=None):
        from mer_keras.models.inference import predict_proba
        from mer_keras.train.callbacks import averaged_weights

        if epoch + 1 not in self.epochs:
            return
        with averaged_weights(self.program):  # what the fit would end with at this epoch
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
        from mer_keras.factory import create_model
        from mer_keras.train.determinism import set_determinism
        from mer_keras.train.timing import phase

        self.cfg, self.num_classes, self.input_shape = cfg, int(num_classes), tuple(input_shape)
        self.aux = cfg.spec.aux_losses
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

    def fit_program(self, x, y, train_indices, callbacks=(), backup_dir=None, labels=None, holdouts=None,
                    checkpoints=None, aus=None, ks=None, soft_targets=None):
        """Train fold ``i`` on ``x[train_indices[i]]`` for ``cfg.epochs`` epochs, all folds in one program.

        Args:
            x, y: (N, ...) float32 inputs in [0, 255] and (N,) int labels of every sample.
            train_indices: per fold, its training samples (indices into x), every fold giving the
                same steps per epoch.
            callbacks: extra Keras callbacks (progress, per-fold history with prefixes ``fold<i>_``).
            backup_dir: the program's training backup (Keras ``BackupAndRestore``), or None.
            labels: per fold its name in messages (``fold sub01``).
            holdouts, checkpoints: per fold (n_i, ...) held-out inputs predicted after each epoch
                count of ``checkpoints`` (nested selection).
            aus: unused (AU heads are not translated; the signature is every trainer's).
            ks: folds per group (sum = number of folds); default
                :func:`program_groups`.
            soft_targets: per fold, (n_j, C) float32 target distributions of its training samples
                (distillation, :mod:`mer_keras.train.distill`), or None (the labels).
        Returns:
            Per fold a :class:`~mer_keras.train.program.FoldFit` (weights in the template's order).
        Raises:
            DataError: an input holds NaN or infinite values (before any training).
            RunFolderError: an unreadable backup.
        """
        from mer_keras.data.checks import check_finite_inputs
        from mer_keras.train.fit import backup_epoch, learning_rate, make_optimizer, remove_fit_backup
        from mer_keras.train.program import FoldDivergence, fold_outcomes, program_callbacks
        from mer_keras.train.timing import EpochClock, phase

        cfg = self.cfg
        ks = list(ks) if ks is not None else program_groups(len(train_indices))
        labels = list(labels) if labels is not None else [f"fold {i}" for i in range(len(train_indices))]
        for label, train in zip(labels, train_indices):
            check_finite_inputs(x[train], label)
        keras.utils.set_random_seed(cfg.seed)
        self.template.set_weights(self.initial)
        with phase("build"):
            program = FoldedModel(self.template, ks, cfg, aux=self.aux, x=x)
            program.compile(optimizer=make_optimizer(cfg))
        start = backup_epoch(backup_dir) if backup_dir else 0
        with phase("dataset"):
            ds, steps = folded_dataset(train_indices, y, cfg, self.num_classes, ks, start_epoch=start,
                                       soft_targets=soft_targets, image_size=(x.shape[-3], x.shape[-2]))
        clock = EpochClock(sum(len(t) for t in train_indices))
        divergence = FoldDivergence(labels, cfg.epochs, stop_folds=program.stop_folds)
        keep = _HoldoutPredictions(program, self.plain, holdouts, checkpoints) if checkpoints else None
        fit_callbacks = program_callbacks(divergence, clock, backup_dir, cfg.backup_minutes, first=[FoldLogs()],
                                          extra=[_Reseed(program), *([keep] if keep else []), *callbacks])
        keras.utils.set_random_seed(cfg.seed)
        history = program.fit(ds, epochs=cfg.epochs, steps_per_epoch=steps, verbose=0, callbacks=fit_callbacks)
        clock.close()
        remove_fit_backup(backup_dir, program.distribute_strategy)
        return fold_outcomes(labels, divergence, history.history, program.fold_weights, self.fold_model,
                             learning_rate(cfg), keep.probabilities if keep else None)
