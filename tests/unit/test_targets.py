"""Auxiliary targets and losses, multi-output training through the one trainer, transfer learning."""

import numpy as np
import pytest

from mer_keras import create_model
from mer_keras._keras import tf
from mer_keras.facs import AU_VOCABULARY
from mer_keras.models.inference import predict_proba
from mer_keras.train.fit import TrainConfig, fit_model
from mer_keras.train.targets import au_centre_loss, au_targets, aux_losses_for, build_targets
from mer_keras.train.transfer import initialise_from


def test_au_targets_are_multi_hot_with_a_mask():
    t, known = au_targets([("AU4", "AU7"), (), ("AU45",), ("AU12",)])
    assert t.shape == (4, len(AU_VOCABULARY))
    assert t[0, AU_VOCABULARY.index("AU4")] == 1 and t[0, AU_VOCABULARY.index("AU7")] == 1 and t[0].sum() == 2
    np.testing.assert_array_equal(known, [1, 0, 0, 1])  # no AU, or only AUs outside the vocabulary: masked


def test_au_centre_loss_matches_numpy():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(5, 4)).astype(np.float32)
    m = np.array([[1, 0], [1, 1], [0, 1], [0, 0], [1, 0]], np.float32)
    got = au_centre_loss(tf.constant(m), tf.constant(f)).numpy()
    want = np.zeros(5)
    for i in range(5):
        terms = [np.mean((f[i] - f[m[:, a] > 0].mean(0)) ** 2) for a in range(2) if m[i, a]]
        want[i] = np.mean(terms) if terms else 0.0
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # identical embeddings within each AU give zero loss
    same = np.repeat(f[:1], 5, axis=0)
    assert np.allclose(au_centre_loss(tf.constant(m), tf.constant(same)).numpy(), 0.0)


def test_build_targets_weights_and_masks():
    y = np.array([0, 1, 2, 1])
    aux = {"proposal": ("proposal", 1.0), "au": ("au", 0.5), "au_cluster": ("au_cluster", 0.1)}
    targets, weights = build_targets(y, [("AU4",), (), ("AU1", "AU2"), ("AU12",)], 3, aux, {0: 2.0, 1: 0.5, 2: 1.0})
    np.testing.assert_array_equal(targets["proposal"], np.eye(3)[y])
    np.testing.assert_array_equal(weights["predictions"], [2.0, 0.5, 1.0, 0.5])
    np.testing.assert_array_equal(weights["proposal"], weights["predictions"])
    np.testing.assert_array_equal(weights["au"], [1, 0, 1, 1])
    np.testing.assert_array_equal(targets["au"], targets["au_cluster"])
    _, none = build_targets(y, None, 3, aux, None)  # a database without AU coding: AU heads masked out
    assert none["au"].sum() == 0 and none["predictions"].tolist() == [1, 1, 1, 1]


def test_aux_loss_weights_can_be_overridden_and_are_checked():
    aux = {"proposal": ("proposal", 1.0)}
    loss, weights = aux_losses_for(aux, {"proposal": 0.25})
    assert weights == {"predictions": 1.0, "proposal": 0.25} and loss["proposal"] == "binary_crossentropy"
    with pytest.raises(ValueError, match="unknown outputs \\['au'\\]"):
        aux_losses_for(aux, {"au": 1.0})


def separable_flow(n=96, seed=0):
    """Flow-like 28x28x3 images whose class is the sign pattern of u and v (learnable in a few epochs)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = rng.normal(127.5, 20, size=(n, 28, 28, 3)).astype(np.float32)
    x[y == 0, :, :, 0] += 60
    x[y == 1, :, :, 1] += 60
    x[y == 2, :, :, 2] += 60
    return np.clip(x, 0, 255), y


@pytest.mark.slow  # 10 s
def test_multi_output_model_learns_through_the_trainer():
    x, y = separable_flow()
    cfg = TrainConfig(model="feature_refinement", epochs=12, batch_size=16, augment=False, seed=1)
    model = fit_model(x, y, 3, cfg)
    history = model.history.history
    assert history["proposal_loss"][-1] < history["proposal_loss"][0]  # the proposal loss is trained too
    xt, yt = separable_flow(30, seed=5)
    assert (predict_proba(model, xt).argmax(1) == yt).mean() > 0.8


def test_au_heads_train_with_masked_labels():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (12, 2, 32, 32, 3)).astype(np.float32)  # 2 frames of 32 x 32: the same heads, faster
    y = np.arange(12) % 3
    aus = [("AU12",), (), ("AU1", "AU2")] * 4
    model = fit_model(x, y, 3, TrainConfig(model="au_convlstm", epochs=1, batch_size=6, augment=True), aus=aus)
    assert {"au_loss", "au_cluster_loss", "predictions_accuracy"} <= set(model.history.history)
    assert np.isfinite(model.history.history["loss"][-1])


def test_initialise_from_copies_matching_layers_and_freezes(tmp_path):
    source = create_model("learnet", 5)
    for w in source.trainable_weights:
        w.assign(tf.random.normal(w.shape, seed=3))
    source.save(tmp_path / "source.keras")
    target = create_model("learnet", 3)
    report = initialise_from(target, str(tmp_path / "source.keras"), freeze_until="conv5")
    assert "predictions" in report["skipped"]  # 5 -> 3 classes: the classifier is not copied
    assert "conv1" in report["copied"]
    np.testing.assert_array_equal(target.get_layer("conv1").get_weights()[0], source.get_layer("conv1").get_weights()[0])
    names = [layer.name for layer in target.layers]
    assert not target.get_layer("conv1").trainable and target.get_layer(names[names.index("conv5") + 1]).trainable
    with pytest.raises(ValueError, match="not a layer"):
        initialise_from(create_model("learnet", 3), str(tmp_path / "source.keras"), freeze_until="conv99")
    with pytest.raises(ValueError, match="no layer"):
        initialise_from(create_model("ststnet", 3), str(tmp_path / "source.keras"))
    with pytest.raises(ValueError, match="would stay frozen at random weights"):  # 5 -> 3 classes: not copied
        initialise_from(create_model("learnet", 3), str(tmp_path / "source.keras"), freeze_until="predictions")


def test_initialise_from_a_float16_weights_file_and_its_folder(tmp_path):
    from mer_keras.errors import ModelFileError
    from mer_keras.train.transfer import WEIGHTS_FILE, read_layer_weights, save_weights_fp16

    source = create_model("micro_attention", 3, input_shape=(28, 28, 3))
    for w in source.trainable_weights:
        w.assign(tf.random.normal(w.shape, seed=5))
    assert save_weights_fp16(source, tmp_path / WEIGHTS_FILE) == source.count_params()
    name, layers = read_layer_weights(tmp_path / WEIGHTS_FILE)
    assert name == WEIGHTS_FILE and layers["stem_conv"][0].dtype == np.float16
    # a larger input and another class count: every conv layer still matches, the classifier does not
    target = create_model("micro_attention", 5, input_shape=(56, 56, 3))
    report = initialise_from(target, str(tmp_path))  # the folder: WEIGHTS_FILE found in it
    assert "stem_conv" in report["copied"] and "predictions" in report["skipped"]
    got = target.get_layer("stem_conv").get_weights()[0]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, source.get_layer("stem_conv").get_weights()[0], rtol=1e-3, atol=1e-3)  # fp16 rounding
    (tmp_path / "plain.h5").write_bytes(b"not hdf5")
    with pytest.raises(ModelFileError, match="plain.h5: not a readable Keras HDF5 weights file"):
        initialise_from(create_model("ststnet", 3), str(tmp_path / "plain.h5"))
    with pytest.raises(ModelFileError, match="no weights file"):
        initialise_from(create_model("ststnet", 3), str(tmp_path / "missing.h5"))


def test_emotion_au_prior_table_and_blend_with_training_codes():
    """The emotion -> AU table (EMFACS) for uncoded clips, blended with the codes of coded training clips."""
    from mer_keras.facs import PRIOR_STRENGTH, emotion_au_prior, table_au_prior

    a = AU_VOCABULARY.index
    positive = table_au_prior("Positive")
    assert positive[a("AU12")] == 1 and positive[a("AU6")] == 1 and positive.sum() == 2
    negative = table_au_prior("negative")  # anger, disgust, fear, sadness, contempt, each 1/5
    assert np.isclose(negative[a("AU4")], 3 / 5) and np.isclose(negative[a("AU14")], 1 / 5)
    assert negative[a("AU12")] == 0 and table_au_prior("others") is None
    classes = ("negative", "positive", "others")
    y = np.array([0, 0, 1, 1, 2, 2])
    coded, known = au_targets([("AU4",), ("AU4", "AU7"), (), (), ("AU45",), ("AU10",)])
    prior, has = emotion_au_prior(y, coded, known, classes)
    m = PRIOR_STRENGTH
    assert np.isclose(prior[0, a("AU4")], (2 + m * 3 / 5) / (2 + m))  # two coded negatives + the table
    np.testing.assert_allclose(prior[1], positive)  # no coded positive clip: the table alone
    assert has.tolist() == [True, True, True] and prior[2, a("AU10")] == 1  # 'others': its one coded clip


def test_uncoded_clips_get_their_class_prior_as_a_soft_au_target():
    spec_aux = {"au": ("au", 0.5), "au_cluster": ("au_cluster", 0.1)}
    y = np.array([0, 1, 2, 2, 3])
    aus = [("AU4",), (), (), ("AU1", "AU2"), ()]
    t, w = build_targets(y, aus, 4, spec_aux, None, classes=("negative", "positive", "tense", "others"))
    a = AU_VOCABULARY.index
    np.testing.assert_array_equal(w["au"], [1, 1, 1, 1, 0])  # 'others': no table row, no coded clip: masked
    _, w45 = build_targets(np.array([0, 0]), [("AU45",), ()], 3, spec_aux, None,
                           classes=("negative", "positive", "surprise"))
    np.testing.assert_array_equal(w45["au"], [0, 1])  # coded, but only outside the vocabulary: not given the table
    assert t["au"][1, a("AU12")] == 1 and t["au"][1, a("AU6")] == 1  # positive, uncoded: the table row
    assert t["au"][0, a("AU4")] == 1 and t["au"][0].sum() == 1  # a coded clip keeps its codes
    np.testing.assert_array_equal(t["au"][2], t["au"][3])  # 'tense', not in the table: its coded clips' mean
    t0, w0 = build_targets(y, aus, 4, spec_aux, None)  # without class names: masked, as before
    np.testing.assert_array_equal(w0["au"], [1, 0, 0, 1, 0])
    # SMIC-like: nothing coded at all -> every clip of a known class gets the table
    t2, w2 = build_targets(y, None, 4, spec_aux, None, classes=("negative", "positive", "surprise", "happy"))
    np.testing.assert_array_equal(w2["au_cluster"], [1, 1, 1, 1, 1])
    assert t2["au"][2, a("AU1")] == 1 and t2["au"][2, a("AU26")] == 1
