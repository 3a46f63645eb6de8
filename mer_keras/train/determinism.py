"""Reproducibility and precision of a fit: op determinism and seeded layers, the mixed-precision policy."""

from __future__ import annotations

from contextlib import contextmanager

from mer_keras._keras import keras, tf


def set_determinism(on: bool) -> None:
    """Make training a function of the seed: TensorFlow op determinism and per-layer random generators.

    With ``on``: ``tf.config.experimental.enable_op_determinism()`` (deterministic kernels; on GPU
    some ops are slower, and an op without a deterministic kernel raises) and tf_keras' random
    generator for Dropout-like layers, which :class:`~mer_keras.train.callbacks.EpochSeeds`
    re-seeds at every epoch. Op determinism cannot be switched off again in the same process.
    """
    if on:
        tf.config.experimental.enable_op_determinism()
        keras.backend.experimental.enable_tf_random_generator()


@contextmanager
def precision_policy(mixed: bool):
    """Build layers under ``mixed_float16`` (float16 compute, float32 variables) when ``mixed``.

    Every zoo model's outputs are float32 layers (softmax and auxiliary heads), as the
    mixed-precision guide asks; ``compile`` then wraps the optimizer in a ``LossScaleOptimizer``.
    """
    if not mixed:
        yield
        return
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)
