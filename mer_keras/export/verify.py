"""Parity of an exported model with its Keras source: probability differences, argmax agreement, UF1."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mer_keras.metrics import compute_metrics


def compare_outputs(reference: np.ndarray, candidate: np.ndarray, y_true: np.ndarray | None = None,
                    classes: Sequence[str] | None = None) -> dict:
    """How closely ``candidate`` probabilities follow ``reference``.

    Args:
        reference, candidate: (N, K) float32 probabilities of the same inputs, N >= 1.
        y_true, classes: (N,) int labels in [0, K) and the K class names; when given, UF1 of both
            is reported too (:func:`mer_keras.metrics.compute_metrics`).
    Returns:
        {"n", "max_abs_diff", "mean_abs_diff", "argmax_agreement" (in [0, 1])[, "uf1_reference",
        "uf1_candidate" (in [0, 1])]}.
    Raises:
        ValueError: empty inputs, or labels that do not match the predictions in length.
    """
    reference, candidate = np.asarray(reference), np.asarray(candidate)
    diff = np.abs(reference - candidate)
    out = {"n": int(len(reference)), "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
           "argmax_agreement": float((reference.argmax(1) == candidate.argmax(1)).mean())}
    if y_true is not None and classes is not None:
        out["uf1_reference"] = compute_metrics(y_true, reference.argmax(1), classes)["uf1"]
        out["uf1_candidate"] = compute_metrics(y_true, candidate.argmax(1), classes)["uf1"]
    return out
