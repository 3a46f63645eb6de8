"""Parity of an exported model with its Keras source."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from mer_keras.train.metrics import compute_metrics


def compare_outputs(reference: np.ndarray, candidate: np.ndarray, y_true: np.ndarray | None = None,
                    classes: Sequence[str] | None = None) -> dict:
    """How closely ``candidate`` probabilities follow ``reference``.

    Args:
        reference, candidate: (N, K) float32 probabilities of the same inputs.
        y_true, classes: when given, UF1 of both is reported too.
    Returns:
        {"n", "max_abs_diff", "mean_abs_diff", "argmax_agreement"[, "uf1_reference", "uf1_candidate"]}.
    """
    reference, candidate = np.asarray(reference), np.asarray(candidate)
    diff = np.abs(reference - candidate)
    out = {"n": int(len(reference)), "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
           "argmax_agreement": float((reference.argmax(1) == candidate.argmax(1)).mean())}
    if y_true is not None and classes is not None:
        out["uf1_reference"] = compute_metrics(y_true, reference.argmax(1), classes)["uf1"]
        out["uf1_candidate"] = compute_metrics(y_true, candidate.argmax(1), classes)["uf1"]
    return out
