"""One group of K folds of a model: its stacked variables and every layer as one fold-stacked op.

A fold's activation (B, ..., C) is the slice ``[..., j*C:(j+1)*C]`` of the group's (B, ..., K*C)
tensor. A convolution is one grouped convolution whose K groups are the folds, a dense layer one
batched product over folds; batch normalization keeps per-fold statistics, dropout draws each
fold's mask from the fold's own generator. :meth:`FoldedNetwork.fold_weights` gives a fold's
weights back in the registry model's order.
"""

from __future__ import annotations

import numpy as np

from mer_keras._keras import keras, tf
from mer_keras.train.vectorized.graph import branch_fusions, deferred_convolutions
from mer_keras.train.vectorized.support import unsupported_layers


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
        ValueError: a layer the program cannot translate
            (:func:`~mer_keras.train.vectorized.support.unsupported_layers` names them).
    """

    def __init__(self, template: keras.Model, k: int, name: str = "g0"):
        super().__init__(name=name)
        bad = unsupported_layers(template)
        if bad:
            raise ValueError(f"{template.name}: layers the folded program cannot translate: {', '.join(bad)}")
        from mer_keras.train.callbacks import random_layers

        self.k = int(k)
        # {layer: {what: variable}}, untracked: the checkpoint holds the list built below
        object.__setattr__(self, "vars", {})
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
        # what a checkpoint holds: the variables, in a list assigned once (the template and the
        # dropout generators, reseeded every epoch, are not part of it)
        self.weights_list = [v for layer in self.vars.values() for v in layer.values()]
        object.__setattr__(self, "_untracked", {  # plain attribute: no tracking, no checkpoint
            "template": template, "generators": generators,
            # bias and activation after the max pooling (graph.deferred_convolutions)
            "deferred": deferred_convolutions(template) - fused,
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
