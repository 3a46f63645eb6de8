"""Class probabilities of a Keras model over in-memory inputs: the one batched prediction that
training, evaluation and export verification share, so their numbers are identical."""

from __future__ import annotations

import numpy as np

from mer_keras._keras import tf


def predict_proba(model, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """(N, K) float32 class probabilities of a Keras model (its ``predictions`` output).

    Args:
        model: a ``keras.Model`` whose output is (N, K) probabilities, or a dict of outputs with
            the classifier under ``"predictions"`` (multi-output models).
        x: (N, H, W, C) or (N, T, H, W, C) float32 inputs in [0, 255].
        batch_size: inputs per ``predict`` step (any size >= 1; it does not change the result).
    Returns:
        (N, K) float32 probabilities, rows in the order of ``x``.
    Raises:
        KeyError: a dict output without ``"predictions"``.
    """
    ds = tf.data.Dataset.from_tensor_slices(x).batch(batch_size).prefetch(tf.data.AUTOTUNE)
    out = model.predict(ds, verbose=0)
    if isinstance(out, dict):
        out = out["predictions"]
    return np.asarray(out, np.float32)
