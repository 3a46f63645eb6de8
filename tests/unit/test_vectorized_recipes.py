"""Training recipes inside the LOSO engine's programs (mer_keras.train.vectorized): weight decay,
moving averages, label smoothing, mixup, cut-mix, class-balanced sampling and the STSTNet variants
act on each fold trained together as on the fold trained alone (a file of its own, so the test
processes share the engine's tests evenly)."""

from __future__ import annotations

import numpy as np
import pytest

from mer_keras.errors import OptionError
from mer_keras.train.config import TrainConfig
from mer_keras.train.folds import run_folds
from tests.unit.test_vectorized import ATOL, CLASSES, uneven_set


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["deep", "dropout"])
def test_ststnet_variants_trained_together_give_what_each_gives_alone(variant):
    """Two convolutions per stream, and a dropout layer whose masks each fold draws as alone."""
    x, y, folds = uneven_set(n=36, subjects=3)
    cfg = dict(model="ststnet", model_options={"variant": variant}, epochs=2, batch_size=8, flow_input=True, seed=5)
    alone = run_folds(x, y, folds, CLASSES, TrainConfig(**cfg, parallel_folds=1))
    together = run_folds(x, y, folds, CLASSES, TrainConfig(**cfg, parallel_folds=3))
    assert together["parallel_folds"] == 3
    np.testing.assert_allclose(together["probabilities"], alone["probabilities"], atol=ATOL, rtol=0)


@pytest.mark.parametrize("model,size", [("ststnet", 28), pytest.param("off_apexnet", 28, marks=pytest.mark.slow)])
def test_weight_decay_and_a_moving_average_of_the_weights_act_on_each_fold_as_alone(model, size):
    """Keras' Adam with decoupled weight decay and an EMA of the weights acts element by element on
    the programs' stacked weights: each fold of a program ends with the average its fit alone
    ends with (within ATOL), and the average differs from the last step's weights."""
    x, y, folds = uneven_set(n=36, subjects=3, size=size)
    cfg = dict(model=model, epochs=2, batch_size=8, flow_input=True, seed=5, weight_decay=0.05, ema=0.9)
    alone = run_folds(x, y, folds, CLASSES, TrainConfig(**cfg, parallel_folds=1))
    together = run_folds(x, y, folds, CLASSES, TrainConfig(**cfg, parallel_folds=3))
    np.testing.assert_allclose(together["probabilities"], alone["probabilities"], atol=ATOL, rtol=0)
    plain = run_folds(x, y, folds, CLASSES, TrainConfig(**{**cfg, "ema": 0.0}, parallel_folds=3))
    assert np.abs(plain["probabilities"] - together["probabilities"]).max() > 1e-4


def test_label_smoothing_is_keras_categorical_smoothing_and_acts_on_each_fold_as_alone():
    """The smoothed loss equals Keras' CategoricalCrossentropy(label_smoothing=s) on one-hot labels
    (and plain sparse cross-entropy at s = 0); folds trained together with it get what each gets alone."""
    from mer_keras._keras import keras, tf
    from mer_keras.train.targets import SmoothedSparseCrossentropy

    probs = tf.constant([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    labels = tf.constant([[0], [1]])
    expected = keras.losses.CategoricalCrossentropy(label_smoothing=0.2)(tf.one_hot([0, 1], 3), probs)
    assert float(SmoothedSparseCrossentropy(0.2, 3)(labels, probs)) == pytest.approx(float(expected), rel=1e-6)
    plain = keras.losses.SparseCategoricalCrossentropy()(labels, probs)
    assert float(SmoothedSparseCrossentropy(0.0, 3)(labels, probs)) == pytest.approx(float(plain), rel=1e-6)
    x, y, folds = uneven_set(n=36, subjects=3)
    cfg = dict(model="ststnet", epochs=2, batch_size=8, flow_input=True, seed=7, label_smoothing=0.2)
    alone = run_folds(x, y, folds, CLASSES, TrainConfig(**cfg, parallel_folds=1))
    together = run_folds(x, y, folds, CLASSES, TrainConfig(**cfg, parallel_folds=3))
    np.testing.assert_allclose(together["probabilities"], alone["probabilities"], atol=ATOL, rtol=0)
    for a, b in zip(alone["folds"], together["folds"]):
        assert b["final_train_loss"] == pytest.approx(a["final_train_loss"], abs=10 * ATOL)


@pytest.mark.parametrize("class_weight", [True, pytest.param(False, marks=pytest.mark.slow)])
def test_mixup_mixes_each_fold_as_alone(class_weight):
    """Mixup draws its weights from (seed, epoch, sample) and pairs each row with the next of its
    batch: folds trained together mix what each mixes alone (inputs, targets, class weights)."""
    x, y, folds = uneven_set(n=36, subjects=3)
    cfg = dict(model="ststnet", epochs=2, batch_size=8, flow_input=True, seed=8, mixup=True, shift=1,
               class_weight=class_weight)
    alone = run_folds(x, y, folds, CLASSES, TrainConfig(**cfg, parallel_folds=1))
    together = run_folds(x, y, folds, CLASSES, TrainConfig(**cfg, parallel_folds=3))
    np.testing.assert_allclose(together["probabilities"], alone["probabilities"], atol=ATOL, rtol=0)
    for a, b in zip(alone["folds"], together["folds"]):
        assert b["final_train_loss"] == pytest.approx(a["final_train_loss"], abs=10 * ATOL)
    plain = run_folds(x, y, folds, CLASSES, TrainConfig(**{**cfg, "mixup": False}, parallel_folds=3))
    assert np.abs(plain["probabilities"] - together["probabilities"]).max() > 1e-4


def test_mixup_pairs_each_row_with_the_next_row_of_its_batch():
    """Row r of a batch is lam * sample(r) + (1 - lam) * sample(r + 1 mod b), lam the weight drawn
    for sample(r) (epoch_plans gives the order and the weights), images and targets alike."""
    from mer_keras.train.tfdata import epoch_plans, training_dataset

    x = np.arange(5 * 4, dtype=np.float32).reshape(5, 2, 2, 1) * 3
    y = np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1]]
    ds, steps = training_dataset(x, y, batch_size=5, epochs=1, seed=3, mixup=True)
    (img, targets), = list(ds.take(steps))
    plan = epoch_plans(5, 3, [0], mixup=True)
    order, lam = plan["order"][0], plan["lam"][0]
    for r in range(5):
        a, b = order[r], order[(r + 1) % 5]
        w = lam[a]
        np.testing.assert_allclose(img.numpy()[r], w * x[a] + (1 - w) * x[b], rtol=1e-6)
        np.testing.assert_allclose(targets.numpy()[r], w * y[a] + (1 - w) * y[b], rtol=1e-6)
    assert 0 < lam.min() and lam.max() < 1 and len(set(lam.tolist())) == 5


@pytest.mark.parametrize("options", [pytest.param(dict(cutmix=True, shift=1), marks=pytest.mark.slow),
                                     pytest.param(dict(sampling="balanced", class_weight=False), marks=pytest.mark.slow),
                                     dict(sampling="balanced", class_weight=False, cutmix=True, shift=1)])
def test_cutmix_and_balanced_sampling_act_on_each_fold_as_alone(options):
    """Cut-mix boxes drawn from (seed, epoch, sample) and class-balanced epochs drawn from (labels,
    seed, epoch): folds trained together see what each sees alone."""
    x, y, folds = uneven_set(n=36, subjects=3)
    cfg = dict(model="ststnet", epochs=2, batch_size=8, flow_input=True, seed=9, **options)
    alone = run_folds(x, y, folds, CLASSES, TrainConfig(**cfg, parallel_folds=1))
    together = run_folds(x, y, folds, CLASSES, TrainConfig(**cfg, parallel_folds=3))
    assert together["parallel_folds"] == 3
    np.testing.assert_allclose(together["probabilities"], alone["probabilities"], atol=ATOL, rtol=0)
    for a, b in zip(alone["folds"], together["folds"]):
        assert b["final_train_loss"] == pytest.approx(a["final_train_loss"], abs=10 * ATOL)
    plain = {**cfg, "cutmix": False, "sampling": "shuffle"}
    plain = run_folds(x, y, folds, CLASSES, TrainConfig(**plain, parallel_folds=3))
    assert np.abs(plain["probabilities"] - together["probabilities"]).max() > 1e-4


def test_cutmix_pastes_the_next_rows_box_and_mixes_targets_by_the_area_kept():
    """Inside row r's box, row r + 1 mod b's pixels; outside, row r's; targets weighted by the
    fraction of row r kept (epoch_plans gives the order, the boxes and the weights)."""
    from mer_keras.train.tfdata import epoch_plans, training_dataset

    x = np.random.default_rng(0).uniform(0, 255, (6, 8, 10, 3)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1, 2]]
    ds, steps = training_dataset(x, y, batch_size=6, epochs=1, seed=3, cutmix=True)
    (img, targets), = list(ds.take(steps))
    plan = epoch_plans(6, 3, [0], cutmix=(8, 10))
    order, boxes, kept = plan["order"][0], plan["box"][0], plan["lam"][0]
    for r in range(6):
        a, b = order[r], order[(r + 1) % 6]
        r0, r1, c0, c1 = boxes[a]
        expected = x[a].copy()
        expected[r0:r1, c0:c1] = x[b][r0:r1, c0:c1]
        np.testing.assert_array_equal(img.numpy()[r], expected)
        assert kept[a] == pytest.approx(1 - (r1 - r0) * (c1 - c0) / 80)
        np.testing.assert_allclose(targets.numpy()[r], kept[a] * y[a] + (1 - kept[a]) * y[b], rtol=1e-6)


def test_cut_boxes_are_the_same_in_numpy_and_tensorflow():
    """One formula, two array libraries: the boxes and weights agree on 20,000 draws (edges included)."""
    import tensorflow as tf

    from mer_keras.train.tfdata import cut_boxes

    rng = np.random.default_rng(1)
    lam, ru, cu = (rng.uniform(0, 1, 20_000).astype(np.float32) for _ in range(3))
    lam[:3], ru[:3], cu[:3] = [0, 0.999999, 0.5], [0, 0.999999, 0.5], [0.999999, 0, 0.5]
    for size in [(28, 28), (7, 12)]:
        boxes, kept = cut_boxes(lam, ru, cu, *size)
        tboxes, tkept = cut_boxes(tf.constant(lam), tf.constant(ru), tf.constant(cu), *size, xp=tf)
        np.testing.assert_array_equal(boxes, tboxes.numpy())
        np.testing.assert_array_equal(kept, tkept.numpy())
        assert (boxes[:, 0] <= boxes[:, 1]).all() and (boxes[:, 1] <= size[0]).all() and (boxes[:, 2] >= 0).all()
        assert ((kept >= 0) & (kept <= 1)).all()


def test_balanced_sampling_draws_each_class_equally_and_is_a_function_of_seed_and_epoch():
    from mer_keras.train.tfdata import balanced_order

    labels = np.array([0] * 30 + [1] * 6 + [2] * 3)
    order = balanced_order(labels, seed=4, epoch=2)
    assert len(order) == 39 and sorted(np.bincount(labels[order]).tolist()) == [13, 13, 13]
    np.testing.assert_array_equal(order, balanced_order(labels, seed=4, epoch=2))
    assert not np.array_equal(order, balanced_order(labels, seed=4, epoch=3))
    assert not np.array_equal(order, balanced_order(labels, seed=5, epoch=2))
    lopsided = balanced_order(np.array([1] * 10 + [2]), seed=0, epoch=0)  # classes present only
    assert sorted(np.bincount(np.array([1] * 10 + [2])[lopsided]).tolist()) == [0, 5, 6]


def test_sampling_and_mixing_options_are_refused_when_they_cannot_work_together():
    with pytest.raises(OptionError, match="--mixup and --cutmix: choose one"):
        TrainConfig(mixup=True, cutmix=True)
    with pytest.raises(OptionError, match="add --no-class-weight"):
        TrainConfig(sampling="balanced")
    with pytest.raises(OptionError, match="--sampling 'even': expected one of shuffle, balanced"):
        TrainConfig(sampling="even", class_weight=False)
