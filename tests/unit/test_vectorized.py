"""Folds vectorised inside each op (mer_keras.train.vectorized): a fold's samples never reach
another fold's weights or loss, and every fold ends with the probabilities and training figures
it has when trained alone (FoldTrainer) with the same seed, within float tolerance."""

from __future__ import annotations

from dataclasses import replace
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
    choose_parallel_folds,
    forward_flops,
    group_folds,
    steps_per_epoch,
)
from mer_keras.train.vectorized.trainer import program_groups

CLASSES = ["a", "b", "c"]
#: A fold trained with others against alone. Without batch normalization the folded program does
#: the same float operations but for the order of the sums in a grouped convolution and a batched
#: product: the probabilities differ by about 1e-7 (measured 1.2e-7 to 5e-7 after 3 epochs).
ATOL = 1e-5
#: With batch normalization: its statistics are computed by other kernels than tf_keras' fused
#: one (7e-7 relative), and networks with it amplify rounding fast: two runs of the plain path on
#: one machine, with oneDNN on and off, differ by 2e-4 after 2 steps (LEARNet). Measured here
#: after 1 epoch: at most 6e-4.
ATOL_BN = 3e-3


def uneven_set(n=60, subjects=6, seed=0, size=28, channels=3):
    """Flow-like inputs of ``subjects`` subjects of unequal sizes (so last batches differ)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (n, size, size, channels)).astype(np.float32)
    y = rng.integers(0, 3, n)
    groups = np.array([f"s{i}" for i in rng.integers(0, subjects, n)])
    return x, y, LOSO().folds(groups)


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(1, 200), min_size=1, max_size=30), batch=st.integers(1, 64), k=st.integers(1, 9))
def test_programs_hold_each_fold_once_with_equal_steps(sizes, batch, k):
    folds = [SimpleNamespace(name=f"f{i}", train=np.arange(n)) for i, n in enumerate(sizes)]
    programs = group_folds(folds, batch, k)
    assert sorted(f.name for g in programs for f in g) == sorted(f.name for f in folds)
    for g in programs:
        assert 1 <= len(g) <= max(k, 1)
        assert len({steps_per_epoch(len(f.train), batch) for f in g}) == 1
        groups = program_groups(len(g))
        assert sum(groups) == len(g) and max(groups) - min(groups) <= 1 and max(groups) <= 8


def test_each_fold_is_fed_only_its_own_training_samples():
    """Every pixel of sample i is i: in every step, fold j's channels of the program's input hold
    only fold j's training samples (never its test subject, never another fold's), with their
    labels, flipped as the fold alone flips them; rows past the fold's own batch are padding of
    weight 0; every epoch visits every training sample."""
    from mer_keras.factory import create_model
    from mer_keras.train.vectorized.dataset import folded_dataset
    from mer_keras.train.vectorized.model import FoldedModel

    n = 40
    x = np.repeat(np.arange(n, dtype=np.float32), 28 * 28 * 3).reshape(n, 28, 28, 3)
    x[:, :, :14] += 0.5  # the left half: a flip moves it right
    y = np.arange(n) % 3
    groups = np.array([f"s{i % 4}" if i < 36 else "s3" for i in range(n)])  # s3 is larger: last batches differ
    folds = LOSO().folds(groups)
    cfg = TrainConfig(model="ststnet", epochs=3, batch_size=8, augment=True, class_weight=True)
    ks = [3, 1]
    program = FoldedModel(create_model("ststnet", 3), ks, cfg, x=x)
    ds, steps = folded_dataset([f.train for f in folds], y, cfg, 3, ks)
    seen = [set() for _ in folds]
    for batch in ds.take(steps * cfg.epochs):
        j = 0
        for g, k in enumerate(ks):
            index, flip, offsets, labels, weights, counts = batch[g]
            inputs = program.inputs_of(index, flip, offsets).numpy()
            assert inputs.shape == (8, 28, 28, 3 * k) and labels.shape == weights.shape == (8, k)
            for i in range(k):
                fold, count = folds[j], int(counts[i])
                ids = np.floor(inputs[:count, 0, 0, 3 * i]).astype(int)
                flipped = inputs[:count, 0, 27, 3 * i] > inputs[:count, 0, 0, 3 * i]
                assert set(ids) <= set(fold.train) and not set(ids) & set(fold.test)
                np.testing.assert_array_equal(flipped, flip.numpy()[:count, i])
                np.testing.assert_array_equal(labels.numpy()[:count, i], y[ids])
                assert (weights.numpy()[:count, i] > 0).all() and (weights.numpy()[count:, i] == 0).all()
                seen[j] |= set(ids)
                j += 1
    for j, fold in enumerate(folds):
        assert seen[j] == set(fold.train)


#: Every model of the registry whose layers the program translates, at a small input (side, channels).
TRANSLATED = [("ststnet", 28, 3), ("off_apexnet", 28, 3), ("feature_refinement", 28, 3), ("learnet", 64, 3),
              ("resnet18", 32, 3), ("resnet34", 32, 3), ("vgg16", 32, 3), ("micro_attention", 28, 1)]


def test_every_translated_model_is_listed_here():
    from mer_keras.factory import list_models

    translated = {m for m in list_models() if not choose_parallel_folds_reason(m)}
    assert translated == {m for m, _, _ in TRANSLATED}


def choose_parallel_folds_reason(model):
    from mer_keras.factory import get_spec
    from mer_keras.train.multifold import supports_parallel_folds

    return supports_parallel_folds(TrainConfig(model=model), None, get_spec(model).input_shape, 3)


@pytest.mark.parametrize("model,size,channels", TRANSLATED)
def test_a_fold_reaches_neither_another_folds_outputs_nor_its_weights(model, size, channels):
    """Changing fold 1's input changes fold 1's outputs only; the gradient of fold 1's loss is zero
    on every other fold's slice of every variable."""
    import tensorflow as tf

    from mer_keras.factory import create_model
    from mer_keras.train.vectorized.network import FoldedNetwork

    tf.random.set_seed(0)
    template = create_model(model, 3, input_shape=(size, size, channels))
    net = FoldedNetwork(template, 3)
    rng = np.random.default_rng(1)
    xs = [rng.uniform(0, 255, (4, size, size, channels)).astype(np.float32) for _ in range(3)]
    valid = tf.ones((4, 3))
    before = net(tf.concat(xs, -1), valid, False)["predictions"].numpy()
    changed = net(tf.concat([xs[0], xs[1] * 0.5, xs[2]], -1), valid, False)["predictions"].numpy()
    np.testing.assert_array_equal(before[:, 0], changed[:, 0])
    np.testing.assert_array_equal(before[:, 2], changed[:, 2])
    assert not np.allclose(before[:, 1], changed[:, 1])
    with tf.GradientTape() as tape:
        outs = net(tf.concat(xs, -1), valid, True)  # every output (Feature Refinement's proposal head too)
        loss = tf.add_n([tf.reduce_sum(tf.math.log(out[:, 1] + 1e-3)) for out in outs.values()])
    pairs = [(type(template.get_layer(name)).__name__, v) for name, vs in net.vars.items() for v in vs.values()
             if v.trainable]
    grads = tape.gradient(loss, [v for _, v in pairs])
    for (kind, v), g in zip(pairs, grads):
        parts = np.split(g.numpy(), 3, axis=0 if kind == "Dense" else -1)  # Dense: (K, D, U); others: K*C last
        assert parts[1].any() and not any(part.any() for j, part in enumerate(parts) if j != 1), v.name


#: Deep networks with batch normalization (ResNet-18/34, micro-attention) are compared after one
#: step: Adam's first update is lr * g / |g|, +-lr for any non-zero gradient, so a gradient
#: element near 0 whose sign the order of a sum flips moves by 2 lr (ResNet-34, one step at lr
#: 1e-3: 0.1 % of the weights differ by up to 2e-3 between the two paths, the probabilities by
#: 3e-6), and later steps amplify that (3e-2 after 2 steps). Two runs of the plain path with other
#: float sums (another CPU, other threads) do the same.
@pytest.mark.parametrize("model,size,atol,batch,epochs", [
    ("ststnet", 28, ATOL, 8, 2),
    ("off_apexnet", 28, ATOL, 8, 2),  # dropout masks replayed as the fold alone draws them
    ("feature_refinement", 28, ATOL, 8, 1),  # the proposal head's loss too
    ("learnet", 64, ATOL_BN, 8, 1),  # batch normalization with per-fold statistics
    pytest.param("resnet18", 32, ATOL_BN, 36, 1, marks=pytest.mark.slow),  # trains alone by default; 20-35 s
    pytest.param("resnet34", 32, ATOL_BN, 36, 1, marks=pytest.mark.slow),  # trains alone by default; 20-35 s
    pytest.param("vgg16", 32, ATOL, 36, 2, marks=pytest.mark.slow),  # trains alone by default; 20-35 s
    pytest.param("micro_attention", 28, ATOL_BN, 36, 1, marks=pytest.mark.slow),  # batch norm: learnet's case
])
def test_folds_trained_together_give_what_each_gives_alone(model, size, atol, batch, epochs):
    channels = {m: c for m, _, c in TRANSLATED}[model]
    x, y, folds = uneven_set(n=36, subjects=3, size=size, channels=channels)
    cfg = dict(model=model, epochs=epochs, batch_size=batch, flow_input=True, seed=4)
    alone = run_folds(x, y, folds, CLASSES, TrainConfig(**cfg, parallel_folds=1))
    together = run_folds(x, y, folds, CLASSES, TrainConfig(**cfg, parallel_folds=3))
    assert alone["parallel_folds"] == 1 and together["parallel_folds"] == 3
    np.testing.assert_allclose(together["probabilities"], alone["probabilities"], atol=atol, rtol=0)
    for a, b in zip(alone["folds"], together["folds"]):
        assert a["subject"] == b["subject"]
        assert b["final_train_loss"] == pytest.approx(a["final_train_loss"], abs=10 * atol)
        assert b["final_train_accuracy"] == pytest.approx(a["final_train_accuracy"], abs=1 / 12 + 1e-6)


def test_a_diverged_fold_stops_alone_and_the_others_are_written(monkeypatch):
    """Fold s1's weights are NaN from the first step (its slice of the dense kernel poisoned): it
    stops at epoch 1, the other folds of its program train to the end, unchanged by it, and reach
    on_fold_end; then the error names s1."""
    from mer_keras.train.vectorized import network as vectorized

    x, y, _ = uneven_set(n=36, subjects=3)
    folds = LOSO().folds(np.repeat(["s0", "s1", "s2"], 12))  # equal steps: one program
    cfg = dict(model="ststnet", epochs=2, batch_size=8)
    clean = run_folds(x, y, folds, CLASSES, TrainConfig(**cfg, parallel_folds=3))
    make = vectorized.FoldedNetwork._make_variables

    def poisoned(self, layer):
        make(self, layer)
        if layer.name == "predictions":
            kernel = self.vars[layer.name]["kernel"]
            kernel.assign(tf.tensor_scatter_nd_update(kernel, [[1]], tf.fill([1, *kernel.shape[1:]], np.nan)))

    import tensorflow as tf

    monkeypatch.setattr(vectorized.FoldedNetwork, "_make_variables", poisoned)
    ends = {}
    with pytest.raises(OptionError, match=r"^fold s1: the training loss is nan at epoch 1 of 2; the learning rate "
                                          r"0.001 is likely too large"):
        run_folds(x, y, folds, CLASSES, TrainConfig(**cfg, parallel_folds=3),
                  on_fold_end=lambda fold, p, row: ends.setdefault(fold.name, p))
    assert sorted(ends) == ["s0", "s2"]
    for fold in (folds[0], folds[2]):
        np.testing.assert_array_equal(ends[fold.name], clean["probabilities"][fold.test])


def test_the_number_of_folds_at_once():
    small = TrainConfig(model="ststnet")
    assert choose_parallel_folds(small, (28, 28, 3), 3, n_folds=68) > 8
    assert choose_parallel_folds(small, (28, 28, 3), 3, n_folds=1) == 1
    assert choose_parallel_folds(small, (28, 28, 3), 3, n_folds=68, requested=5) == 5
    assert choose_parallel_folds(small, (28, 28, 3), 3, n_folds=3, requested=5) == 3
    assert choose_parallel_folds(small, (28, 28, 3), 3, n_folds=68, requested=1) == 1
    assert choose_parallel_folds(small, (28, 28, 3), 3, n_folds=68, memory=3 * 8 * 32 * 10**5) < 20  # memory
    assert choose_parallel_folds(TrainConfig(model="vgg16"), (112, 112, 3), 3, n_folds=12) == 1  # big: alone
    assert choose_parallel_folds(TrainConfig(model="feature_refinement"), (28, 28, 3), 3, n_folds=12) > 1
    with pytest.raises(OptionError, match="auxiliary outputs au, au_cluster are not translated"):
        choose_parallel_folds(TrainConfig(model="au_convlstm"), (8, 64, 64, 3), 3, n_folds=12, requested=2)
    with pytest.raises(OptionError, match=r"layers the folded program does not translate \(.*LayerNormalization"):
        choose_parallel_folds(TrainConfig(model="htnet"), (28, 28, 3), 3, n_folds=12, requested=2)


def test_forward_flops_of_ststnet_match_its_layers():
    """3x3 'same' convolutions with 3 + 5 + 8 filters on 28 x 28 x 3 are 2 x 28 x 28 x 16 x 27
    FLOPs (multiply-add = 2); pooling, rescaling and the 400 -> 3 dense layer add a few percent."""
    convs = 2 * 28 * 28 * 16 * 27
    assert convs <= forward_flops("ststnet", (28, 28, 3), 3) <= 1.2 * convs


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


def test_the_final_model_trained_in_a_program_equals_the_final_model_trained_alone():
    """With ``final``, the final model (every clip) joins the program of its steps per epoch as one
    more fold: its weights give the predictions of fit_model's, within ATOL, and the folds' results
    do not change."""
    from mer_keras.models.inference import predict_proba
    from mer_keras.train.fit import fit_model

    x, y, _ = uneven_set(n=36, subjects=3)
    folds = LOSO().folds(np.repeat(["s0", "s1", "s2"], 12))  # 24 training clips per fold: 3 steps of 8
    cfg = TrainConfig(model="ststnet", epochs=2, batch_size=8, seed=3, parallel_folds=4)  # room for the final
    everything = np.arange(20)  # 20 clips: 3 steps too
    joined = run_folds(x, y, folds, CLASSES, cfg, final=everything)
    plain = run_folds(x, y, folds, CLASSES, cfg)
    alone = fit_model(x[everything], y[everything], 3, cfg)
    np.testing.assert_allclose(joined["probabilities"], plain["probabilities"], atol=ATOL, rtol=0)
    np.testing.assert_allclose(predict_proba(joined["final_model"](), x), predict_proba(alone, x), atol=ATOL, rtol=0)
    assert "final_model" not in plain
    other_steps = run_folds(x, y, folds, CLASSES, cfg, final=np.arange(36))  # 5 steps: trained alone by the job
    assert "final_model" not in other_steps
    full = run_folds(x, y, folds, CLASSES, replace(cfg, parallel_folds=3), final=everything)  # no room: alone
    assert "final_model" not in full


@pytest.mark.parametrize("parallel", [1, 3])
def test_checkpoint_predictions_with_a_moving_average_are_those_of_the_shorter_fit(parallel):
    """Nested selection scores epoch counts from one fit: with an EMA of the weights, the
    predictions after epoch e are made with the average at epoch e, what a fit of e epochs ends
    with (one fold alone and three in a program)."""
    x, y, folds = uneven_set(n=36, subjects=3)
    cfg = dict(model="ststnet", batch_size=8, flow_input=True, seed=6, ema=0.8, parallel_folds=parallel)
    long = run_folds(x, y, folds, CLASSES, TrainConfig(**cfg, epochs=3), checkpoints=[2, 3])
    short = run_folds(x, y, folds, CLASSES, TrainConfig(**cfg, epochs=2))
    for fold in folds:
        np.testing.assert_allclose(long["checkpoints"][fold.name][2], short["probabilities"][fold.test], atol=ATOL,
                                   rtol=0)
        np.testing.assert_allclose(long["checkpoints"][fold.name][3], long["probabilities"][fold.test], atol=ATOL,
                                   rtol=0)


