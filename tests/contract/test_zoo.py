"""Model zoo: parameter counts against the papers, wiring of each architecture, custom layers."""

import numpy as np
import pytest

from mer_keras import create_model, load_model
from mer_keras._keras import keras


def trainable(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


@pytest.mark.parametrize("classes, expected", [(3, 2_664_475), (5, 2_666_525)])
def test_off_apexnet_has_the_papers_2_66m_parameters(classes, expected):
    # Gan et al. 2019: "about 2.66M"; 2 x (156 + 2,416) + 1,606,656 + 1,049,600 + 1,025 K.
    assert create_model("off_apexnet", classes).count_params() == expected


@pytest.mark.parametrize("name, expected", [("resnet18", 11_689_512), ("resnet34", 21_797_672)])
def test_resnets_match_the_reference_parameter_counts(name, expected):
    # torchvision's counts for 1,000 ImageNet classes at 224 x 224 (trainable parameters).
    model = create_model(name, 1000, input_shape=(224, 224, 3))
    assert trainable(model) == expected
    assert model.predict(np.full((1, 224, 224, 3), 128.0, np.float32), verbose=0).shape == (1, 1000)


def test_vgg16_matches_the_papers_138m():
    model = create_model("vgg16", 1000, input_shape=(224, 224, 3))
    assert model.count_params() == 138_357_544
    assert model.predict(np.full((1, 224, 224, 3), 128.0, np.float32), verbose=0).shape == (1, 1000)
    assert [layer.name for layer in model.layers if "conv" in layer.name][:3] == ["block1_conv1", "block1_conv2",
                                                                                   "block2_conv1"]


def test_htnet_matches_the_official_configuration():
    model = create_model("htnet", 3)
    # Official PyTorch model: 139,582,982; Keras MultiHeadAttention(use_bias=False) has no output
    # bias: 256 x 2 + 512 x 2 + 1024 x 10 = 11,776 fewer.
    assert model.count_params() == 139_582_982 - 11_776
    shapes = {layer.name: layer.output_shape for layer in model.layers}
    assert shapes["patch_embedding"] == (None, 4, 4, 256)
    assert shapes["level1_aggregate_pool"] == (None, 1, 1, 1024)
    assert sum(name.endswith("_attn") for name in shapes) == 14  # depths 2 + 2 + 10


def test_htnet_blocks_hold_several_tokens_when_the_patch_map_allows():
    model = create_model("htnet", 3, input_shape=(32, 32, 3), patch_size=2, variant="small")
    shapes = {layer.name: layer.output_shape for layer in model.layers}
    assert shapes["level2_blockify"] == (None, 16, 16, 64)  # 16 blocks of 4 x 4 tokens
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    assert model.predict(x, verbose=0).shape == (2, 3)
    with pytest.raises(ValueError, match="divisible"):
        create_model("htnet", 3, input_shape=(30, 30, 3))


def test_micro_attention_unit_adds_3c2_weights_per_block():
    with_unit = create_model("micro_attention", 3)
    without = create_model("micro_attention", 3, attention=False)
    widths = (64, 128, 256, 512)
    assert trainable(with_unit) - trainable(without) == sum(3 * c * c for c in widths)
    # the channel mean is fixed: C non-trainable weights of value 1/C per block
    mean = with_unit.get_layer("stage2_attention_channel_mean")
    assert not mean.trainable
    np.testing.assert_allclose(mean.get_weights()[0], 1.0 / 128)
    assert with_unit.input_shape == (None, 224, 224, 1)


def test_micro_attention_output_is_y_times_one_plus_mask():
    model = create_model("micro_attention", 3, input_shape=(64, 64, 1))
    names = ["stage1_add", "stage1_attention_mask", "stage1_attention_out"]
    probe = keras.Model(model.input, [model.get_layer(n).output for n in names])
    y, mask, out = probe.predict(np.random.default_rng(1).uniform(0, 255, (2, 64, 64, 1)).astype(np.float32), verbose=0)
    assert mask.shape[-1] == 1 and (mask > 0).all() and (mask < 1).all()
    np.testing.assert_allclose(out, y * (1.0 + mask), rtol=1e-5, atol=1e-5)


def test_feature_refinement_has_one_proposal_branch_per_class():
    model = create_model("feature_refinement", 5)
    assert {o.name.split("/")[0] for o in model.outputs} == {"predictions", "proposal"}
    assert sum(layer.name.endswith("_attention") for layer in model.layers) == 5
    assert model.get_layer("fusion").output_shape == (None, 5 * 64)
    assert model.get_layer("inception2_downsample").output_shape == (None, 7, 7, 64)
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in model.layers)


def test_feature_refinement_paper_variant_has_two_inception_streams_on_u_and_v():
    """The authors' Dual-Inception: one inception stream on u, one on v, strain unused (issue 19)."""
    from mer_keras.explain import default_layer
    from mer_keras.factory import get_spec

    model = create_model("feature_refinement", 3, variant="paper")
    assert model.get_layer("u_inception2_downsample").output_shape == (None, 7, 7, 64)
    assert model.get_layer("v_inception2_downsample").output_shape == (None, 7, 7, 64)
    assert model.get_layer("shared").output_shape == (None, 7, 7, 128)
    one = create_model("feature_refinement", 3)
    # the two streams: twice the inception weights on one input channel each; the branches see 128 channels
    inception = sum(w.shape.num_elements() for layer in one.layers if layer.name.startswith("inception")
                    for w in layer.weights)
    first_conv_diff = 4 * 6 * 2  # each first-block 1x1 path (and pool projection) loses 2 of its 3 input channels
    two = sum(w.shape.num_elements() for layer in model.layers if "_inception" in layer.name for w in layer.weights)
    assert two == 2 * inception - 2 * first_conv_diff
    x = np.random.default_rng(0).uniform(0, 255, size=(2, 28, 28, 3)).astype(np.float32)
    y = x.copy()
    y[..., 2] = 0.0  # strain
    np.testing.assert_allclose(model.predict(x, verbose=0)["predictions"],
                               model.predict(y, verbose=0)["predictions"], atol=1e-6)
    assert default_layer(model, get_spec("feature_refinement").explain_layer) == "shared"
    assert default_layer(one, get_spec("feature_refinement").explain_layer) == "inception2_downsample"
    with pytest.raises(ValueError, match="u and v"):
        create_model("feature_refinement", 3, input_shape=(28, 28, 1), variant="paper")


def test_named_recipes_set_only_the_options_left_at_their_defaults():
    """``--recipe paper`` gives the paper's optimiser settings; options given explicitly win (issue 19)."""
    from mer_keras.errors import OptionError
    from mer_keras.factory import get_spec, list_models
    from mer_keras.jobs.resolve import resolve_options
    from mer_keras.jobs.train_options import TrainOptions
    from mer_keras.registry import RECIPE_KEYS, register_model

    opts, _ = resolve_options(TrainOptions(model="ststnet", recipe="paper"))
    assert (opts.lr, opts.epochs, opts.batch_size, opts.augment, opts.class_weight) == (5e-5, 500, 256, False, False)
    opts, _ = resolve_options(TrainOptions(model="ststnet", recipe="paper", epochs=80, lr=1e-4, augment=True))
    assert (opts.lr, opts.epochs, opts.batch_size, opts.augment) == (1e-4, 80, 256, True)  # given: kept, even defaults
    opts, _ = resolve_options(TrainOptions(model="ststnet"))  # no recipe: the project's defaults, recorded
    assert (opts.lr, opts.epochs, opts.batch_size, opts.augment, opts.shift, opts.class_weight) == \
        (1e-3, 80, 32, True, 0, True)
    fr, _ = resolve_options(TrainOptions(model="feature_refinement", recipe="paper"))
    assert (fr.variant, fr.batch_size, fr.epochs) == ("paper", 3, 40)  # the authors' system: variant and training
    assert resolve_options(TrainOptions(model="feature_refinement", recipe="paper", variant="one_stream"))[0].variant \
        == "one_stream"
    assert resolve_options(TrainOptions(model="htnet", recipe="paper"))[0].epochs == 800
    project = vars(resolve_options(TrainOptions(model="ststnet", recipe="project"))[0])
    assert project == {**vars(resolve_options(TrainOptions(model="ststnet"))[0]), "recipe": "project"}
    with pytest.raises(OptionError, match="off_apexnet has recipes project"):
        resolve_options(TrainOptions(model="off_apexnet", recipe="paper"))
    for name in list_models():
        for recipe in get_spec(name).recipes.values():
            assert set(recipe) <= {*RECIPE_KEYS, "source"} and recipe["source"]
    with pytest.raises(ValueError, match="must set only"):
        register_model("nope_recipe", representation="flow", input_shape=(28, 28, 3),
                       recipes={"paper": {"epochs": 5, "momentum": 0.9, "source": "x"}})


def test_unrolled_conv_lstm_equals_keras_conv_lstm2d():
    from mer_keras.models.au_convlstm import apply_unrolled_conv_lstm

    inputs = keras.Input((4, 6, 6, 3))
    mine = keras.Model(inputs, apply_unrolled_conv_lstm(inputs, 5, 3, name="lstm"))
    ref_layer = keras.layers.ConvLSTM2D(5, 3, padding="same", recurrent_activation="sigmoid")
    ref = keras.Model(inputs, ref_layer(inputs))
    # Keras kernel (3, 3, 3, 20) / recurrent (3, 3, 5, 20) / bias (20,), gates i, f, c, o.
    kernel, bias = mine.get_layer("lstm_input").get_weights()
    recurrent = mine.get_layer("lstm_recurrent").get_weights()[0]
    rng = np.random.default_rng(0)
    bias = rng.normal(size=bias.shape).astype(np.float32)
    mine.get_layer("lstm_input").set_weights([kernel, bias])
    ref_layer.set_weights([kernel, recurrent, bias])
    x = rng.normal(size=(2, 4, 6, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(mine.predict(x, verbose=0), ref.predict(x, verbose=0), atol=1e-5)


def test_au_convlstm_outputs_and_fusion_weights():
    from mer_keras.train.targets import AU_VOCABULARY

    model = create_model("au_convlstm", 3)
    assert model.input_shape == (None, 8, 64, 64, 3)
    out = model.predict(np.full((1, 8, 64, 64, 3), 128.0, np.float32), verbose=0)
    assert out["au"].shape == (1, len(AU_VOCABULARY)) and out["au_cluster"].shape == (1, 64)
    np.testing.assert_allclose(np.linalg.norm(out["au_cluster"], axis=1), 1.0, rtol=1e-5)  # cannot shrink to 0
    fusion = model.get_layer("multiscale_fusion")
    assert fusion.get_weights()[0].shape == (3,)  # one learned weight per backbone stage


def test_custom_layers_serialize(tmp_path):
    from mer_keras.layers.custom import ChannelSlice, NormalizedWeightedSum, TimeStep, TokenPositionBias

    inputs = keras.Input((3, 4, 4, 3))
    frame = TimeStep(2)(inputs)
    a, b = ChannelSlice(0, 1)(frame), ChannelSlice(2, 3)(frame)
    model = keras.Model(inputs, NormalizedWeightedSum()([a, b]))
    x = np.random.default_rng(0).normal(size=(2, 3, 4, 4, 3)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x, verbose=0), 0.5 * (x[:, 2, ..., :1] + x[:, 2, ..., 2:]) / (1 + 5e-5),
                               rtol=1e-4)
    model.save(tmp_path / "m.keras")
    np.testing.assert_allclose(load_model(tmp_path / "m.keras").predict(x, verbose=0), model.predict(x, verbose=0))
    tokens = keras.Input((2, 4, 3))  # (blocks, tokens per block, channels): HTNet's position bias
    biased = keras.Model(tokens, TokenPositionBias()(tokens))
    t = np.random.default_rng(1).normal(size=(2, 2, 4, 3)).astype(np.float32)
    biased.save(tmp_path / "b.keras")
    np.testing.assert_array_equal(load_model(tmp_path / "b.keras").predict(t, verbose=0), biased.predict(t, verbose=0))
    with pytest.raises(ValueError, match="outside the 3 input channels"):
        ChannelSlice(2, 4)(frame)
    with pytest.raises(ValueError, match="outside the 3 time steps"):
        TimeStep(3)(inputs)


def test_recurrent_models_convert_with_a_static_batch():
    from mer_keras.export.tflite import convert
    from mer_keras.runtime.tflite import TFLiteModel

    inputs = keras.Input((3, 8, 8, 2))
    x = keras.layers.ConvLSTM2D(4, 3, padding="same")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(x)))
    tfl = TFLiteModel(convert(model, "none"))
    assert tfl.fixed_batch == 1
    x = np.random.default_rng(0).normal(size=(5, 3, 8, 8, 2)).astype(np.float32)
    np.testing.assert_allclose(tfl.predict(x), model.predict(x, verbose=0), atol=1e-5)


def test_learning_rates_follow_the_papers_where_they_differ():
    from mer_keras.factory import get_spec, list_models
    from mer_keras.registry import DEFAULT_LR

    assert get_spec("htnet").learning_rate == 5e-5  # official training script (Adam, 5e-5)
    assert get_spec("vgg16").learning_rate == 1e-4  # no batch normalisation: stays at chance at 1e-3
    assert all(get_spec(m).learning_rate == DEFAULT_LR for m in list_models() if m not in ("htnet", "vgg16"))


def test_ststnet_wide_variant_doubles_every_stream():
    """STSTNet's `wide` variant: 6, 10, 16 filters (896 + 801 K parameters), the same layer names,
    so weights, explain and QAT annotation see the same network shape; unknown variants are refused."""
    from mer_keras.errors import OptionError

    wide = create_model("ststnet", 3, variant="wide")
    assert wide.count_params() == 896 + 801 * 3
    assert [wide.get_layer(f"stream{k}_conv").filters for k in (1, 2, 3)] == [6, 10, 16]
    assert [layer.name for layer in wide.layers] == [layer.name for layer in create_model("ststnet", 3).layers]
    with pytest.raises(OptionError, match="unknown STSTNet variant 'huge'"):
        create_model("ststnet", 3, variant="huge")


def test_htnet_small_narrow_variant_halves_the_width_of_small():
    narrow = create_model("htnet", 3, variant="small_narrow")
    assert narrow.count_params() == 618_246 < create_model("htnet", 3, variant="small").count_params()


def test_off_apexnet_narrow_variant():
    """FC layers of 256 units, the same layer names; 473,371 parameters for 3 classes."""
    narrow = create_model("off_apexnet", 3, variant="narrow")
    assert narrow.count_params() == 473_371
    assert [layer.name for layer in narrow.layers] == [layer.name for layer in create_model("off_apexnet", 3).layers]


def test_ststnet_deep_and_dropout_variants():
    """`deep`: a second 3x3 convolution per stream (84 + 230 + 584 more parameters); `dropout`: the
    paper's parameters with dropout 0.5 before the softmax, identity at inference."""
    import numpy as np

    paper = create_model("ststnet", 3)
    deep = create_model("ststnet", 3, variant="deep")
    assert deep.count_params() == paper.count_params() + 84 + 230 + 584 == 2_549
    assert [deep.get_layer(f"stream{k}_conv2").filters for k in (1, 2, 3)] == [3, 5, 8]
    dropout = create_model("ststnet", 3, variant="dropout")
    assert dropout.count_params() == paper.count_params()
    assert dropout.get_layer("dropout").rate == 0.5
    dropout.set_weights(paper.get_weights())
    x = np.random.default_rng(0).uniform(0, 255, (4, 28, 28, 3)).astype("float32")
    np.testing.assert_allclose(dropout(x, training=False).numpy(), paper(x, training=False).numpy(), rtol=1e-6)
