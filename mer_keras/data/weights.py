"""Class weights from labels (TF-free: numpy and sklearn), shared by training and the QAT fine-tune."""

from __future__ import annotations

import numpy as np


def balanced_class_weight(y: np.ndarray, num_classes: int) -> dict[int, float]:
    """sklearn's 'balanced' weights n / (K * n_k), K = classes present in ``y``.

    Args:
        y: (N,) int labels in [0, num_classes).
    Returns:
        {class index: weight} for every class 0..num_classes-1 (Keras requires all keys); a class
        absent from ``y`` gets 1.0, which has no effect since no sample carries it.
    """
    from sklearn.utils.class_weight import compute_class_weight

    present = np.unique(y)
    w = dict(zip(present.tolist(), compute_class_weight("balanced", classes=present, y=y)))
    return {k: float(w.get(k, 1.0)) for k in range(num_classes)}
