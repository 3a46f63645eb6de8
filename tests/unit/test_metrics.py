import numpy as np
import pytest

from mer_keras.metrics import compute_metrics, plot_confusion_matrix


def test_uf1_uar_by_hand():
    classes = ["negative", "positive", "surprise"]
    y = [0, 0, 0, 0, 1, 1, 2, 2]
    p = [0, 0, 1, 2, 1, 0, 2, 2]
    m = compute_metrics(y, p, classes)
    # recall: neg 2/4, pos 1/2, sur 2/2 -> UAR = (0.5 + 0.5 + 1) / 3
    assert m["uar"] == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    # precision: neg 2/3, pos 1/2, sur 2/3; F1 = 2PR/(P+R)
    f1 = [2 * (2 / 3) * 0.5 / (2 / 3 + 0.5), 0.5, 2 * (2 / 3) * 1 / (2 / 3 + 1)]
    assert m["uf1"] == pytest.approx(np.mean(f1))
    assert m["accuracy"] == pytest.approx(5 / 8)
    assert m["confusion_matrix"] == [[2, 1, 1], [1, 1, 0], [0, 0, 2]]
    assert m["per_class"]["surprise"]["support"] == 2


def test_uf1_ignores_classes_absent_from_truth():
    # A fold whose subject shows only one class: UF1/UAR average over the classes present.
    m = compute_metrics([1, 1], [1, 1], ["negative", "positive", "surprise"])
    assert m["uf1"] == 1.0 and m["uar"] == 1.0


def test_plot(tmp_path):
    plot_confusion_matrix([[1, 0], [0, 1]], ["a", "b"], tmp_path / "cm.png")
    assert (tmp_path / "cm.png").read_bytes()[:4] == b"\x89PNG"


def test_errors():
    with pytest.raises(ValueError):
        compute_metrics([], [], ["a"])


def test_class_weights_cover_every_class_even_if_absent_from_the_fold():
    from mer_keras.data.weights import balanced_class_weight

    w = balanced_class_weight(np.array([0, 0, 0, 2]), 3)
    assert set(w) == {0, 1, 2} and w[1] == 1.0
    assert w[2] == pytest.approx(4 / (2 * 1)) and w[0] == pytest.approx(4 / (2 * 3))


def test_fold_plot_colours_each_database_and_marks_single_clip_folds(tmp_path, monkeypatch):
    """uf1_per_fold.png: one legend entry and colour per database (subjects named db/... or db_...),
    a legend above the axes (not over the bars), a dot over folds of one test clip."""
    import matplotlib.pyplot as plt

    from mer_keras.metrics import fold_databases, plot_fold_uf1

    assert fold_databases(["casme2/casme2_sub01", "samm_006", "smic_s1", "sub01"], ["casme2", "samm", "smic"]) == \
        ["casme2", "samm", "smic", ""]
    rows = [{"subject": s, "uf1": u, "n_test": n} for s, u, n in
            [("casme2_sub01", 0.8, 5), ("casme2_sub02", 1.0, 1), ("samm_006", 0.5, 4), ("smic_s1", 0.7, 9)]]
    seen = {}
    close = plt.close
    monkeypatch.setattr(plt, "close", lambda fig=None: (seen.setdefault("fig", fig), close(fig)))
    plot_fold_uf1(rows, {"casme2": {"uf1": 0.8, "n": 6}, "samm": {"uf1": 0.5, "n": 4}, "smic": {"uf1": 0.7, "n": 9}},
                  tmp_path / "uf1.png")
    assert (tmp_path / "uf1.png").read_bytes()[:4] == b"\x89PNG"
    ax = seen["fig"].axes[0]
    legend = ax.get_legend()
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels == ["casme2", "samm", "smic", "one test clip"]
    colours = {tuple(h.get_facecolor()) for h in legend.legend_handles[:3]}
    assert len(colours) == 3
    assert legend.get_bbox_to_anchor().y0 >= ax.get_window_extent().y1 - 1  # above the axes
    markers = [line for line in ax.get_lines() if line.get_marker() == "o"]
    assert len(markers) == 1 and list(markers[0].get_xdata()) == [1]


def test_confusion_plot_shows_counts_and_row_normalised_recall(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt
    import numpy as np

    seen = {}
    close = plt.close
    monkeypatch.setattr(plt, "close", lambda fig=None: (seen.setdefault("fig", fig), close(fig)))
    plot_confusion_matrix([[6, 2], [0, 0]], ["a", "b"], tmp_path / "cm.png")  # class b absent: a row of zeros
    counts, recall = (ax.images[-1].get_array() for ax in seen["fig"].axes[:2])
    np.testing.assert_array_equal(counts, [[6, 2], [0, 0]])
    np.testing.assert_allclose(recall, [[0.75, 0.25], [0, 0]])
