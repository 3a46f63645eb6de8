"""Folds trained at once (mer_keras.train.multifold): each copy sees only its own fold's training
samples, and every fold ends with the probabilities and training figures it has when trained
alone with the same seed; the one-model-per-job trainer gives the results of a fresh model per fold."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mer_keras.data.protocols import LOSO
from mer_keras.errors import OptionError
from mer_keras.train.config import TrainConfig
from mer_keras.train.folds import run_folds
from mer_keras.train.multifold import (
    MultiFoldTrainer,
    choose_parallel_folds,
    forward_flops,
    group_folds,
    multifold_dataset,
    steps_per_epoch,
)

CLASSES = ["a", "b", "c"]
#: Probabilities of a fold trained with others and alone: equal within this (bit-equal on CPU so far).
ATOL = 1e-5


def uneven_set(n=60, subjects=6, seed=0):
    """Flow-like inputs of ``subjects`` subjects of unequal sizes (so last batches differ)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (n, 28, 28, 3)).astype(np.float32)
    y = rng.integers(0, 3, n)
    groups = np.array([f"s{i}" for i in rng.integers(0, subjects, n)])
    return x, y, LOSO().folds(groups)


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(1, 200), min_size=1, max_size=30), batch=st.integers(1, 64), k=st.integers(1, 9))
def test_groups_hold_each_fold_once_with_equal_steps(sizes, batch, k):
    folds = [SimpleNamespace(name=f"f{i}", train=np.arange(n)) for i, n in enumerate(sizes)]
    groups = group_folds(folds, batch, k)
    assert sorted(f.name for g in groups for f in g) == sorted(f.name for f in folds)
    for g in groups:
        assert 1 <= len(g) <= max(k, 1)
        assert len({steps_per_epoch(len(f.train), batch) for f in g}) == 1


def test_each_copy_is_fed_only_its_own_folds_training_samples():
    """Every pixel of sample i is i: the batches of input j hold only fold j's training samples
    (never its test subject, never another fold's), with their own labels, every epoch."""
    n = 40
    x = np.repeat(np.arange(n, dtype=np.float32), 28 * 28 * 3).reshape(n, 28, 28, 3)
    y = np.arange(n) % 3
    groups = np.array([f"s{i % 4}" for i in range(n)])
    folds = LOSO().folds(groups)
    cfg = TrainConfig(model="ststnet", epochs=3, batch_size=7, augment=True, class_weight=True)
    ds, steps = multifold_dataset([x[f.train] for f in folds], [y[f.train] for f in folds], cfg, 3)
    seen = [set() for _ in folds]
    for inputs, labels, weights in ds.take(steps * cfg.epochs):
        for j, fold in enumerate(folds):
            ids = inputs[j].numpy()[:, 0, 0, 0].astype(int)  # a flip leaves a constant image as it is
            assert set(ids) <= set(fold.train) and not set(ids) & set(fold.test)
            np.testing.assert_array_equal(labels[f"fold{j}"].numpy(), y[ids])
            assert weights[f"fold{j}"].shape == (len(ids),)
            seen[j] |= set(ids)
    for j, fold in enumerate(folds):
        assert seen[j] == set(fold.train)


def test_each_output_depends_only_on_its_own_input():
    trainer = MultiFoldTrainer((28, 28, 3), 3, TrainConfig(model="ststnet"), 3)
    rng = np.random.default_rng(1)
    xs = [rng.uniform(0, 255, (4, 28, 28, 3)).astype(np.float32) for _ in range(3)]
    before = trainer.model.predict(xs, verbose=0)
    changed = trainer.model.predict([xs[0], xs[1] * 0.5, xs[2]], verbose=0)
    np.testing.assert_array_equal(before["fold0"], changed["fold0"])
    np.testing.assert_array_equal(before["fold2"], changed["fold2"])
    assert not np.allclose(before["fold1"], changed["fold1"])


@pytest.mark.parametrize("model", ["off_apexnet"])  # dropout masks must replay too
def test_folds_trained_at_once_give_what_each_gives_alone(model):
    """(STSTNet too: tests/e2e/test_golden.py's manifest run trains its folds at once and matches
    the run folder of the code that trained one fold at a time.)"""
    x, y, folds = uneven_set(n=36, subjects=4)
    cfg = dict(model=model, epochs=2, batch_size=8, flow_input=True, seed=4)
    alone = run_folds(x, y, folds, CLASSES, TrainConfig(**cfg, parallel_folds=1))
    together = run_folds(x, y, folds, CLASSES, TrainConfig(**cfg, parallel_folds=4))
    assert alone["parallel_folds"] == 1 and together["parallel_folds"] == 4
    np.testing.assert_allclose(together["probabilities"], alone["probabilities"], atol=ATOL, rtol=0)
    for a, b in zip(alone["folds"], together["folds"]):
        assert a["subject"] == b["subject"] and a["accuracy"] == b["accuracy"] and a["uf1"] == b["uf1"]
        assert b["final_train_loss"] == pytest.approx(a["final_train_loss"], abs=ATOL)
        assert b["final_train_accuracy"] == pytest.approx(a["final_train_accuracy"], abs=ATOL)


@pytest.mark.slow  # 16 s
def test_one_model_per_job_gives_the_results_of_a_fresh_model_per_fold():
    """The reused (reset) model of FoldTrainer against fit_model building a new one for each fold."""
    from mer_keras.models.inference import predict_proba
    from mer_keras.train.fit import fit_model
    from mer_keras.train.memory import releasing_fit_memory

    x, y, folds = uneven_set(n=30, subjects=3, seed=2)
    cfg = TrainConfig(model="off_apexnet", epochs=2, batch_size=8, flow_input=True, parallel_folds=1)
    reused = run_folds(x, y, folds, CLASSES, cfg)
    for fold in folds:
        with releasing_fit_memory():
            p = predict_proba(fit_model(x[fold.train], y[fold.train], 3, cfg), x[fold.test])
        np.testing.assert_array_equal(reused["probabilities"][fold.test], p)


def test_the_number_of_folds_at_once():
    small = TrainConfig(model="ststnet")
    assert choose_parallel_folds(small, (28, 28, 3), 3, n_folds=68, cores=2) > 1
    assert choose_parallel_folds(small, (28, 28, 3), 3, n_folds=1, cores=2) == 1
    assert choose_parallel_folds(small, (28, 28, 3), 3, n_folds=68, requested=5) == 5
    assert choose_parallel_folds(small, (28, 28, 3), 3, n_folds=3, requested=5) == 3
    assert choose_parallel_folds(small, (28, 28, 3), 3, n_folds=68, requested=1) == 1
    assert choose_parallel_folds(TrainConfig(model="learnet"), (112, 112, 3), 3, n_folds=12, cores=2) == 1
    assert choose_parallel_folds(TrainConfig(model="off_apexnet"), (28, 28, 3), 3, n_folds=68, cores=2) == 1
    with pytest.raises(OptionError, match="auxiliary outputs"):
        choose_parallel_folds(TrainConfig(model="au_convlstm"), (8, 64, 64, 3), 3, n_folds=12, requested=2)
    with pytest.raises(OptionError, match="init-from"):
        choose_parallel_folds(TrainConfig(model="ststnet", init_from="m.keras"), (28, 28, 3), 3, 12, requested=2)


def test_forward_flops_of_ststnet_match_its_layers():
    """3x3 'same' convolutions with 3 + 5 + 8 filters on 28 x 28 x 3 are 2 x 28 x 28 x 16 x 27
    FLOPs (multiply-add = 2); pooling, rescaling and the 400 -> 3 dense layer add a few percent."""
    convs = 2 * 28 * 28 * 16 * 27
    assert convs <= forward_flops("ststnet", (28, 28, 3), 3) <= 1.2 * convs
