"""MER metrics on pooled predictions (as MEGC2019 scores the composite).

* accuracy: fraction correct.
* UF1 (unweighted F1): the mean over classes of per-class F1 = sklearn ``f1_score(average="macro")``.
* UAR (unweighted average recall): the mean of per-class recall = ``recall_score(average="macro")``.

Source: See, Yap, Li, Hong, Wang, "MEGC 2019 - The Second Facial Micro-Expressions Grand
Challenge", FG 2019. UF1 and UAR average over the classes that have ground truth in the scored
set (all of them for pooled LOSO predictions; a single fold may lack some); per-class figures
are reported for every listed class, 0 where undefined. sklearn computes every figure.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, recall_score


def compute_metrics(y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[str]) -> dict:
    """Accuracy, UF1, UAR, per-class recall and F1, and the confusion matrix.

    Args:
        y_true, y_pred: int class indices in [0, len(classes)).
        classes: class names, index order.
    Returns:
        {"accuracy", "uf1", "uar": float in [0, 1]; "per_class": {name: {"recall", "f1", "support"}};
         "confusion_matrix": K x K list (rows = truth, columns = prediction); "n": int}.
    Raises:
        ValueError: empty or mismatched inputs.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(f"need equal, non-empty label arrays, got {y_true.shape} and {y_pred.shape}")
    labels = list(range(len(classes)))
    recall = recall_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    f1 = f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    present = [k for k in labels if (y_true == k).any()]  # classes with ground truth in this set
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "uf1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "uar": float(recall_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "per_class": {c: {"recall": float(recall[k]), "f1": float(f1[k]), "support": int((y_true == k).sum())}
                      for k, c in enumerate(classes)},
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "n": int(y_true.size),
    }


def plot_confusion_matrix(cm, classes: Sequence[str], path, title: str = "") -> None:
    """Save a confusion matrix as PNG (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    from mer_keras.atomic import atomic_path

    fig, ax = plt.subplots(figsize=(4 + 0.4 * len(classes), 3.5 + 0.4 * len(classes)))
    ConfusionMatrixDisplay(np.asarray(cm), display_labels=list(classes)).plot(ax=ax, colorbar=False, cmap="Blues")
    ax.set_title(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
