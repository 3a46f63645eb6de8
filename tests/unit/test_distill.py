"""Distillation in LOSO: target distributions train each fold as its labels do, alone and in a
program; the teachers of fold s are the fold-s models; the student's targets mix labels and teachers."""

import numpy as np
import pytest

from mer_keras.data.protocols import LOSO
from mer_keras.train.config import TrainConfig
from mer_keras.train.distill import student_targets, teacher_probabilities
from mer_keras.train.folds import run_folds

CLASSES = ["a", "b", "c"]
#: Folds trained together against alone, and one-hot targets against labels: the same float
#: operations but for the order of sums (tests/unit/test_vectorized.py measures 1e-7 to 5e-7).
ATOL = 1e-5


def small_set(n=36, subjects=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (n, 28, 28, 3)).astype(np.float32)
    y = rng.integers(0, 3, n)
    return x, y, LOSO().folds(np.repeat([f"s{i}" for i in range(subjects)], n // subjects))


@pytest.mark.parametrize("parallel", [1, 3])
def test_one_hot_targets_train_as_the_labels_do(parallel):
    """Targets equal to the labels' one-hot rows give the labels' fit (class weights by label)."""
    x, y, folds = small_set()
    cfg = TrainConfig(model="ststnet", epochs=2, batch_size=8, flow_input=True, seed=2, parallel_folds=parallel)
    onehot = np.eye(3, dtype=np.float32)[y]
    labels = run_folds(x, y, folds, CLASSES, cfg)
    targets = run_folds(x, y, folds, CLASSES, cfg, soft_targets={f.name: onehot for f in folds})
    np.testing.assert_allclose(targets["probabilities"], labels["probabilities"], atol=ATOL, rtol=0)


def test_soft_targets_act_on_each_fold_as_alone_and_each_fold_reads_its_own_row():
    """Fold s0's targets differ from s1's for the same clip: trained together, each fold gets what
    it gets alone (its own targets, not another fold's)."""
    x, y, folds = small_set(seed=1)
    rng = np.random.default_rng(3)
    soft = {f.name: rng.dirichlet(np.ones(3), len(x)).astype(np.float32) for f in folds}
    cfg = dict(model="ststnet", epochs=2, batch_size=8, flow_input=True, seed=2)
    alone = run_folds(x, y, folds, CLASSES, TrainConfig(**cfg, parallel_folds=1), soft_targets=soft)
    together = run_folds(x, y, folds, CLASSES, TrainConfig(**cfg, parallel_folds=3), soft_targets=soft)
    np.testing.assert_allclose(together["probabilities"], alone["probabilities"], atol=ATOL, rtol=0)
    swapped = dict(zip([f.name for f in folds], [soft[f.name] for f in reversed(folds)]))
    other = run_folds(x, y, folds, CLASSES, TrainConfig(**cfg, parallel_folds=3), soft_targets=swapped)
    assert np.abs(other["probabilities"] - together["probabilities"]).max() > 1e-4


def test_the_teachers_of_fold_s_are_the_fold_s_models():
    """A teacher's probabilities of fold s's test clips are that fold's LOSO predictions: the model
    that never saw subject s; its final model's come from a fit on the final clips."""
    from mer_keras.train.folds import FINAL

    x, y, folds = small_set(seed=4)
    cfg = TrainConfig(model="ststnet", epochs=2, batch_size=8, flow_input=True, seed=5)
    loso = run_folds(x, y, folds, CLASSES, cfg)
    teacher = teacher_probabilities(x, y, folds, CLASSES, lambda name: cfg, final=np.arange(len(x)))
    assert set(teacher) == {f.name for f in folds} | {FINAL}
    for fold in folds:
        assert teacher[fold.name].shape == (len(x), 3)
        np.testing.assert_allclose(teacher[fold.name][fold.test], loso["probabilities"][fold.test], atol=ATOL, rtol=0)


def test_student_targets_mix_labels_and_the_mean_of_the_teachers():
    y = np.array([0, 2])
    t1 = {"s0": np.array([[0.6, 0.2, 0.2], [0.1, 0.1, 0.8]], np.float32)}
    t2 = {"s0": np.array([[0.2, 0.6, 0.2], [0.3, 0.3, 0.4]], np.float32)}
    out = student_targets(y, [t1, t2], alpha=0.5, num_classes=3)["s0"]
    np.testing.assert_allclose(out, [[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], atol=1e-6)
    np.testing.assert_allclose(out.sum(1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(student_targets(y, [t1], 1.0, 3)["s0"], np.eye(3)[y])
    with pytest.raises(ValueError, match="alpha 1.5"):
        student_targets(y, [t1], 1.5, 3)
    with pytest.raises(ValueError, match="different folds"):
        student_targets(y, [t1, {"s1": t1["s0"]}], 0.5, 3)


def test_flip_test_time_augmentation_averages_the_mirrored_prediction_of_the_same_fold_model():
    """A mirror is its own inverse; on inputs the mirror leaves unchanged (u = 127.5, v and strain
    symmetric) the averaged prediction is the plain one; elsewhere it is another, a distribution;
    the plain probabilities do not change with the option."""
    from mer_keras.train.tfdata import flipped

    rng = np.random.default_rng(5)
    x = rng.uniform(0, 255, (36, 28, 28, 3)).astype(np.float32)
    np.testing.assert_allclose(flipped(flipped(x, True), True), x, atol=1e-4)  # 255 - (255 - u): float rounding
    symmetric = (x + x[:, :, ::-1]) / 2
    symmetric[..., 0] = 127.5
    np.testing.assert_array_equal(flipped(symmetric, True), symmetric)
    y = rng.integers(0, 3, 36)
    folds = LOSO().folds(np.repeat(["s0", "s1", "s2"], 12))
    cfg = TrainConfig(model="ststnet", epochs=1, batch_size=8, flow_input=True, seed=1)
    for inputs, same in ((symmetric, True), (x, False)):
        plain = run_folds(inputs, y, folds, CLASSES, cfg)
        tta = run_folds(inputs, y, folds, CLASSES, cfg, test_flip=True)
        np.testing.assert_array_equal(tta["probabilities"], plain["probabilities"])
        np.testing.assert_allclose(tta["probabilities_test_flip"].sum(1), 1.0, atol=1e-5)
        difference = np.abs(tta["probabilities_test_flip"] - plain["probabilities"]).max()
        assert (difference < 1e-6) if same else (difference > 1e-4)
