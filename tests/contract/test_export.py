"""Export formats, QAT and `mer-keras export`: files, metadata and verification against Keras."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from mer_keras.cli.main import app
from mer_keras.export.formats import FORMATS, find_format, format_names, tflite_quants
from mer_keras.factory import create_model, inference_model, list_models
from mer_keras.runtime.metadata import sha256_file

runner = CliRunner()


def test_formats_table_drives_the_choices():
    assert format_names() == ("keras", "saved_model", "onnx", "tflite")
    assert tflite_quants() == ("none", "fp16", "dynamic", "int8", "qat")
    assert find_format("tflite").name == "tflite_fp32"
    assert find_format("tflite", "qat").filename == "model_qat_int8.tflite"
    assert find_format("keras", "none").name == "keras"
    with pytest.raises(ValueError, match="valid: --format keras"):
        find_format("keras", "int8")
    res = runner.invoke(app, ["export", "--help"])
    for q in tflite_quants():
        assert q in res.output


@pytest.mark.parametrize("name", list_models())
def test_every_zoo_layer_has_a_qat_decision(name):
    from mer_keras.export.quantize import LAYER_POLICY, qat_plan
    from mer_keras.factory import get_spec

    options = {"variant": "small"} if name == "htnet" else {}  # same layer types, a fraction of the weights
    model = inference_model(create_model(name, 3, input_shape=get_spec(name).data_config().input_shape,
                                         **options))
    plan = qat_plan(model)
    covered = set(plan.default) | set(plan.output) | set(plan.passthrough) | set(plan.float_in_qat)
    assert covered == {layer.name for layer in model.layers[1:]}
    assert all(reason for reason in plan.float_in_qat.values())
    assert set(plan.float_in_qat) <= {layer.name for layer in model.layers
                                      if LAYER_POLICY.get(type(layer).__name__, ("",))[0] == "float_in_qat"}


def test_a_layer_without_a_decision_is_refused():
    from mer_keras._keras import keras
    from mer_keras.export.quantize import qat_plan

    inp = keras.Input((8,))
    out = keras.layers.Dense(3, activation="softmax")(keras.layers.GaussianNoise(0.1, name="odd_noise")(inp))
    with pytest.raises(ValueError, match="odd_noise \\(GaussianNoise\\)"):
        qat_plan(keras.Model(inp, out))


@pytest.mark.slow
def test_qat_model_keeps_the_float_weights_and_converts_to_full_integer():
    """au_convlstm through QAT (about 50 s, most of it the converter). The default run checks the
    same on STSTNet: float weights kept (test_fake_quant_ranges_...), full-integer QAT TFLite with no
    float op (test_export_all_formats_writes_verifies_and_records)."""
    from mer_keras.export.quantize import quantize_aware
    from mer_keras.export.tflite import convert, float_ops
    from mer_keras.runtime.tflite import TFLiteModel

    model = inference_model(create_model("au_convlstm", 3))  # custom layers, TimeDistributed, weighted sums
    qat, plan = quantize_aware(model)
    assert "multiscale_fusion" in plan.output and plan.float_in_qat
    x = np.random.default_rng(0).uniform(0, 255, (2, *model.input_shape[1:])).astype(np.float32)
    kernel = [w for w in qat.weights if w.name.endswith("predictions/kernel:0")]
    assert len(kernel) == 1
    np.testing.assert_array_equal(kernel[0].numpy(), model.get_layer("predictions").kernel.numpy())
    assert qat.predict(x, verbose=0).shape == (2, 3)
    blob = convert(qat, "qat", representative=x)
    assert float_ops(blob) == []
    tfl = TFLiteModel(blob)
    assert tfl.input_dtype == np.int8 and tfl.predict(x).shape == (2, 3)


def test_fake_quant_ranges_start_from_real_activations_not_tfmot_defaults():
    from mer_keras.export.quantize import calibrate_ranges, quantize_aware

    model = inference_model(create_model("ststnet", 3))
    qat, _ = quantize_aware(model)
    kernel = [w for w in qat.weights if w.name.endswith("predictions/kernel:0")]  # QAT starts from the float weights
    assert len(kernel) == 1
    np.testing.assert_array_equal(kernel[0].numpy(), model.get_layer("predictions").kernel.numpy())
    x = np.random.default_rng(0).uniform(0, 255, (16, 28, 28, 3)).astype(np.float32)
    weights = {v.name: v.numpy() for v in qat.variables if not v.name.split(":")[0].endswith(("_min", "_max"))}
    assert calibrate_ranges(qat, x) > 0
    ranges = {v.name: float(np.max(v.numpy())) for v in qat.variables if v.name.split(":")[0].endswith("_max")}
    input_max = [v for k, v in ranges.items() if "quantize_layer" in k]
    assert input_max and abs(input_max[0] - x.max()) < 1e-3  # the raw input range, not tfmot's initial 6.0
    for v in qat.variables:
        if v.name in weights:
            np.testing.assert_array_equal(v.numpy(), weights[v.name])


def test_export_all_formats_writes_verifies_and_records(tiny_flow_export):
    """``mer-keras export RUN --format all --qat-epochs 1``, run by the session fixture (tests/conftest.py)
    because the edge tests use its files too."""
    run, output = tiny_flow_export
    meta = json.loads((run / "metadata.json").read_text())
    report = json.loads((run / "export_report.json").read_text())
    for fmt in FORMATS.values():
        path = run / fmt.filename
        assert path.exists(), fmt.filename
        entry = meta["files"][fmt.filename]
        assert entry["format"] == fmt.name and entry["bytes"] > 0
        if path.is_file():
            assert entry["sha256"] == sha256_file(path)
        v = report[fmt.filename]["verification"]
        assert v["held_out"] and v["n"] == 12 and 0 <= v["argmax_agreement"] <= 1
        assert f"{fmt.filename}" in output
    assert report["model.keras"]["verification"]["max_abs_diff"] == 0
    assert report["saved_model"]["verification"]["max_abs_diff"] < 1e-5
    assert report["model.onnx"]["verification"]["max_abs_diff"] < 1e-4  # onnxruntime's float32 kernels
    assert meta["files"]["model.onnx"]["onnx"]["opset"] == 17
    assert report["model_fp32.tflite"]["verification"]["max_abs_diff"] < 1e-4
    assert report["model_fp16.tflite"]["verification"]["max_abs_diff"] < 1e-2
    for name in ("model_int8.tflite", "model_qat_int8.tflite"):
        assert meta["files"][name]["float_ops"] == []
        assert meta["files"][name]["quantization"]["input"][0] > 0
    qat = meta["files"]["model_qat_int8.tflite"]["qat"]
    assert qat["epochs"] == 1 and qat["fake_quantized_by_tfmot"] > 0
    window = meta["window"]
    assert window["fps"] == 100.0 and 2 <= window["frames"] <= 60 and window["stride_frames"] >= 1


def test_qat_export_needs_the_callers_training_batches(tmp_path):
    """The export library builds no training pipeline: QAT without QATOptions.batches is refused, before any work."""
    from mer_keras.export.exporter import QATOptions, write_export

    model = inference_model(create_model("ststnet", 3))
    x, y = np.zeros((4, 28, 28, 3), np.float32), np.array([0, 1, 2, 0])
    for qat in (None, QATOptions(epochs=1)):
        with pytest.raises(ValueError, match="tflite_qat needs QATOptions.batches"):
            write_export(model, FORMATS["tflite_qat"], tmp_path, x, y, qat)
    assert not list(tmp_path.iterdir())


def test_a_diverged_qat_fine_tuning_is_refused_and_nothing_is_written(tmp_path):
    """A QAT loss that becomes NaN (here from a learning rate of 1e38: the first update overflows
    every activation) stops the export naming the epoch and --qat-lr; a NaN *input* is named as the
    data's fault before any fine-tuning, without the learning-rate hint. No QAT model is written."""
    from functools import partial

    from mer_keras.errors import DataError, OptionError
    from mer_keras.export.exporter import QATOptions, write_export
    from mer_keras.train.tfdata import make_dataset

    model = inference_model(create_model("ststnet", 3))
    x = np.random.default_rng(0).uniform(0, 255, (8, 28, 28, 3)).astype(np.float32)
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    batches = partial(make_dataset, batch_size=4, shuffle=False, augment=False, flow_input=True, seed=0)
    with pytest.raises(OptionError, match=r"QAT fine-tuning: the training loss is nan at epoch [12] of 2; "
                                          r".*1e\+38 is likely too large \(try a smaller --qat-lr\)"):
        write_export(model, FORMATS["tflite_qat"], tmp_path, x, y, QATOptions(epochs=2, lr=1e38, batches=batches))
    assert not list(tmp_path.iterdir())
    x[3, 5, 5, 0] = np.nan
    with pytest.raises(DataError, match=r"^QAT fine-tuning: input sample 4 of 8 holds NaN values;") as err:
        write_export(model, FORMATS["tflite_qat"], tmp_path, x, y, QATOptions(epochs=2, lr=1e-4, batches=batches))
    assert "qat-lr" not in str(err.value)
    assert not list(tmp_path.iterdir())


def test_a_config_without_recipe_options_is_filled_as_training_fills_it():
    """A config.json without batch_size or augment (hand-written, or from before they were recorded)
    gave a TensorFlow traceback in QAT (a batch size of None); the export fills them as training does."""
    from mer_keras.jobs.export import recorded_options
    from mer_keras.train.config import TrainConfig

    opts = recorded_options({"model": "ststnet", "data": "synthetic", "epochs": 1}, "config.json")
    assert opts.batch_size == TrainConfig().batch_size and opts.augment == TrainConfig().augment
    assert recorded_options({"model": "ststnet", "batch_size": 8}, "config.json").batch_size == 8


@pytest.mark.slow  # 40 s: the whole QAT export of such a run
def test_qat_export_of_a_run_whose_config_lacks_recipe_options(tiny_flow_run, tmp_path):
    """A config.json without batch_size or augment (hand-written, or from before they were recorded)
    fine-tunes with the values training would have used (it gave a TensorFlow traceback)."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_flow_run, run, ignore=shutil.ignore_patterns("*.tflite", "saved_model", "export_report.json"))
    config = json.loads((run / "config.json").read_text())
    for key in ("batch_size", "augment"):
        config.pop(key)
    (run / "config.json").write_text(json.dumps(config))
    res = runner.invoke(app, ["export", str(run), "--format", "tflite", "--quant", "qat", "--qat-epochs", "1"])
    assert res.exit_code == 0, res.output
    assert (run / "model_qat_int8.tflite").is_file()


def test_export_refuses_an_unfinished_run_and_a_bad_combination(tiny_flow_run, tmp_path):
    res = runner.invoke(app, ["export", str(tmp_path)])
    assert res.exit_code == 2 and "not a finished run folder" in res.output
    res = runner.invoke(app, ["export", str(tiny_flow_run), "--format", "keras", "--quant", "int8"])
    assert res.exit_code == 2 and "valid:" in res.output


@pytest.mark.slow
@pytest.mark.parametrize("name", list_models())
def test_every_zoo_model_converts_in_every_format(name):
    """Every architecture through every export path, random weights (about 10 minutes in all)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
    from check_exports import check

    rows = {r["format"]: r for r in check(name)}
    assert set(rows) == {"saved_model", "tflite_fp32", "tflite_fp16", "tflite_dynamic", "tflite_int8", "tflite_qat"}
    for fmt in ("tflite_int8", "tflite_qat"):
        assert rows[fmt]["float_ops"] == [] and rows[fmt]["float_fallback"] is None
    if rows["tflite_fp32"]["bytes"] > 1e6:  # below that the flatbuffer's fixed part dominates
        assert rows["tflite_fp16"]["bytes"] < 0.6 * rows["tflite_fp32"]["bytes"]


def test_edge_docs_list_every_format_and_layer_decision():
    from pathlib import Path

    from mer_keras.export.quantize import LAYER_POLICY

    doc = (Path(__file__).resolve().parents[2] / "docs" / "EDGE.md").read_text()
    for f in FORMATS.values():
        assert f"`{f.filename}" in doc and (f.quant is None or f"`{f.quant}`" in doc), f.name
    for layer in LAYER_POLICY:
        assert f"`{layer}`" in doc, layer


def test_onnx_without_its_packages_says_what_to_install(monkeypatch, tmp_path):
    import sys

    from mer_keras.errors import OptionError
    from mer_keras.export.onnx import convert_onnx, predict_onnx

    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # an import of it fails
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(OptionError, match=r'ONNX needs tf2onnx.*pip install "mer-keras\[onnx\]"'):
        convert_onnx(None, tmp_path / "m.onnx")
    with pytest.raises(OptionError, match="ONNX needs onnxruntime"):
        predict_onnx(tmp_path / "m.onnx", np.zeros((1, 2)))
