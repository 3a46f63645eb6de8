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
    """Save a confusion matrix as PNG (matplotlib, Agg backend): the counts, and beside them the
    row-normalised matrix (each true class's recall on the diagonal), as MER papers show it.

    Args:
        cm: (K, K) int counts, rows the true classes, columns the predictions (sklearn's layout).
        classes: the K class names. path: the PNG to write (atomically).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    from mer_keras.atomic import atomic_path

    cm = np.asarray(cm)
    rows = cm.sum(axis=1, keepdims=True)
    recall = np.divide(cm, rows, out=np.zeros(cm.shape, float), where=rows > 0)
    side = 3.2 + 0.4 * len(classes)
    fig, axes = plt.subplots(1, 2, figsize=(2 * side + 0.6, side + 0.3))
    ConfusionMatrixDisplay(cm, display_labels=list(classes)).plot(ax=axes[0], colorbar=False, cmap="Blues")
    axes[0].set_title("counts", fontsize=9)
    ConfusionMatrixDisplay(recall, display_labels=list(classes)).plot(ax=axes[1], colorbar=False, cmap="Blues",
                                                                      values_format=".2f")
    axes[1].images[-1].set_clim(0, 1)
    axes[1].set_title("row-normalised (recall of each true class)", fontsize=9)
    for ax in axes:
        ax.tick_params(axis="x", labelrotation=30)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def plot_learning_curves(histories: dict[str, pd.DataFrame], path, title: str = "") -> None:  # noqa: F821
    """Save the training loss and accuracy per epoch as PNG: one thin line per fold and their mean.

    Args:
        histories: fold name -> its per-epoch table (columns ``epoch``, ``loss``, ``accuracy``;
            ``RUN/history/<fold>.csv``). title: what the curves cover (e.g. "all 12 folds").
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from mer_keras.atomic import atomic_path

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, column in zip(axes, ("loss", "accuracy")):
        tables = [h[["epoch", column]].dropna() for h in histories.values() if column in h]
        for t in tables:
            ax.plot(t["epoch"], t[column], color="tab:blue", alpha=0.15, linewidth=0.8)
        if tables:
            mean = pd.concat(tables).groupby("epoch")[column].mean()
            ax.plot(mean.index, mean.to_numpy(), color="tab:blue", linewidth=2, label="mean over folds")
            ax.legend(loc="best", fontsize=8)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"training {column}")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def fold_databases(subjects: Sequence[str], databases) -> list[str]:
    """The database of each fold's subject, "" when it names none: ``casme2/casme2_sub01`` and
    ``casme2_sub01`` (with ``casme2`` among ``databases``) are casme2's, ``sub01`` no database's."""
    known = sorted(databases, key=len, reverse=True)
    return [name.split("/")[0] if "/" in name else next((db for db in known if name.startswith(f"{db}_")), "")
            for name in subjects]


def plot_fold_uf1(fold_rows: Sequence[dict], per_database: dict, path, title: str = "") -> None:
    """Save per-fold UF1 bars (one colour per database when there are several, named in a legend
    above the plot) and, for a composite run, the pooled UF1 of each database, as PNG. Folds of a
    single test clip (whose UF1 is 0 or 1 by construction) are marked with a dot above the bar.

    Args:
        fold_rows: results.json ``folds`` (``subject`` like ``casme2/casme2_sub01``, ``casme2_sub01``
            or ``sub01``; ``uf1``; ``n_test``). per_database: results.json ``per_database``
            ({db: {"uf1", "n"}}): its names colour the bars of subjects named ``<db>/...`` or ``<db>_...``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from mer_keras.atomic import atomic_path

    names = [r["subject"] for r in fold_rows]
    dbs = fold_databases(names, per_database or {})
    palette = {db: plt.get_cmap("tab10")(i) for i, db in enumerate(dict.fromkeys(dbs))}
    panels = 2 if per_database else 1
    fig, axes = plt.subplots(1, panels, figsize=(max(6.0, 0.2 * len(names) + 3), 4.4),
                             gridspec_kw={"width_ratios": [4, 1][:panels]}, squeeze=False)
    ax = axes[0][0]
    ax.bar(range(len(names)), [r["uf1"] for r in fold_rows], color=[palette[d] for d in dbs], width=0.8)
    ax.set_xticks(range(len(names)), [n.split("/")[-1] for n in names], rotation=90, fontsize=7)
    ax.set_xlim(-0.7, len(names) - 0.3)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("UF1 of the fold's test clips")
    single = [i for i, r in enumerate(fold_rows) if int(r.get("n_test", 2)) == 1]
    if single:
        ax.plot(single, [min(1.0, fold_rows[i]["uf1"]) + 0.04 for i in single], linestyle="none", marker="o",
                markersize=3, color="black")
    handles = [Patch(color=colour, label=db) for db, colour in palette.items() if db]
    if single:
        handles.append(Line2D([], [], linestyle="none", marker="o", markersize=3, color="black",
                              label="one test clip"))
    if handles:  # above the axes, never over the bars
        ax.legend(handles=handles, fontsize=8, ncol=len(handles), loc="lower left", bbox_to_anchor=(0, 1.01),
                  frameon=False, borderaxespad=0)
    if per_database:
        ax2 = axes[0][1]
        items = list(per_database.items())
        ax2.bar(range(len(items)), [m["uf1"] for _, m in items], color=[palette.get(db, "tab:gray") for db, _ in items])
        ax2.set_xticks(range(len(items)), [f"{db}\nn={m['n']}" for db, m in items], fontsize=7)
        ax2.set_ylim(0, 1.08)
        ax2.set_title("pooled per database", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
