"""Custom layers, written only where no stock Keras layer does the job (no Lambda layers).

Each stores its init arguments, has ``get_config`` and is registered as serializable, so models
reload with ``safe_mode=True`` and convert to TFLite (they lower to strided-slice / add ops).
"""

from __future__ import annotations

from mer_keras._keras import keras, tf


@keras.saving.register_keras_serializable(package="mer_keras")
class ChannelSlice(keras.layers.Layer):
    """Channels ``start:stop`` of the last axis, e.g. the u or v plane of a flow image.

    Input (..., C) -> output (..., stop - start), same dtype.

    Raises:
        ValueError: empty or out-of-range slice (at build time, naming the layer).
    """

    def __init__(self, start: int, stop: int, **kwargs):
        super().__init__(**kwargs)
        self.start, self.stop = int(start), int(stop)

    def build(self, input_shape):
        c = input_shape[-1]
        if not 0 <= self.start < self.stop <= c:
            raise ValueError(f"{self.name}: channel slice {self.start}:{self.stop} is outside the {c} input channels")
        super().build(input_shape)

    def call(self, x):
        return x[..., self.start:self.stop]

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape[:-1]).concatenate([self.stop - self.start])

    def get_config(self):
        return {**super().get_config(), "start": self.start, "stop": self.stop}


@keras.saving.register_keras_serializable(package="mer_keras")
class TokenPositionBias(keras.layers.Layer):
    """A learned scalar per token position, added to every channel of that token.

    The positional embedding of NesT/HTNet (``nn.Parameter(torch.randn(seq_len))``, one value per
    position within a block, broadcast over channels). Input (B, N, T, C) -> same shape; the
    weight has shape (T, 1), initialised from N(0, 1) as in the official code.
    """

    def build(self, input_shape):
        self.bias = self.add_weight(name="position_bias", shape=(int(input_shape[-2]), 1),
                                    initializer=keras.initializers.RandomNormal(stddev=1.0), trainable=True)
        super().build(input_shape)

    def call(self, x):
        return x + self.bias


@keras.saving.register_keras_serializable(package="mer_keras")
class NormalizedWeightedSum(keras.layers.Layer):
    """Sum of N same-shape tensors with learned, normalised, non-negative weights.

    ``out = sum_i w_i x_i / (eps + sum_j w_j)`` with ``w = relu(v)`` (fast normalised fusion, Tan et
    al., EfficientDet, CVPR 2020, Eq. 3); the weights start equal (v = 1). Input: a list of N
    tensors of one shape; output: that shape. Weight: (N,) float32.
    """

    def __init__(self, epsilon: float = 1e-4, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        shapes = [tuple(s) for s in input_shape]
        if len(shapes) < 2 or any(s[1:] != shapes[0][1:] for s in shapes):
            raise ValueError(f"{self.name}: needs two or more inputs of one shape, got {shapes}")
        self.fusion_weights = self.add_weight(name="fusion_weights", shape=(len(shapes),),
                                              initializer="ones", trainable=True)
        super().build(input_shape)

    def call(self, inputs):
        w = tf.nn.relu(self.fusion_weights)
        w = w / (tf.reduce_sum(w) + self.epsilon)
        out = w[0] * inputs[0]
        for i, x in enumerate(inputs[1:], start=1):  # pairwise ADD: TFLite has an int8 kernel for it, not for ADD_N
            out = out + w[i] * x
        return out

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="mer_keras")
class TimeStep(keras.layers.Layer):
    """Frame ``index`` of a sequence: (B, T, ...) -> (B, ...), same dtype.

    Raises:
        ValueError: index outside 0..T-1 (at build time, naming the layer).
    """

    def __init__(self, index: int, **kwargs):
        super().__init__(**kwargs)
        self.index = int(index)

    def build(self, input_shape):
        if not 0 <= self.index < input_shape[1]:
            raise ValueError(f"{self.name}: frame {self.index} is outside the {input_shape[1]} time steps")
        super().build(input_shape)

    def call(self, x):
        return x[:, self.index]

    def compute_output_shape(self, input_shape):
        return tf.TensorShape([input_shape[0]]).concatenate(input_shape[2:])

    def get_config(self):
        return {**super().get_config(), "index": self.index}
