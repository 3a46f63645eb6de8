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
