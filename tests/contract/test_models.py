"""Every registered model: forward pass, output shape, save/reload, TFLite conversion."""

import numpy as np
import pytest

from mer_keras import create_model, list_models, load_model
from mer_keras.export.tflite import convert
from mer_keras.factory import get_spec, inference_model
from mer_keras.runtime.tflite import TFLiteModel

#: Models whose whole check takes a few seconds. For the others the TFLite converter alone takes
#: 8 s (micro_attention) to 70 s (htnet); they run under ``pytest -m slow``. The default run still
#: builds each of them (tests/contract/test_zoo.py: parameter counts, wiring, forward passes), saves
#: and reloads every custom layer (test_zoo.py::test_custom_layers_serialize), converts a ConvLSTM
#: with a static batch (test_zoo.py) and LEARNet (the ``tiny_run`` export, with parity).
QUICK = ("ststnet", "off_apexnet", "feature_refinement")


@pytest.mark.parametrize("name", [pytest.param(n, marks=() if n in QUICK else pytest.mark.slow)
                                  for n in list_models()])
def test_build_forward_save_reload_tflite(name, tmp_path):
    """Every registered model at its default input: forward, save/reload (all outputs), TFLite fp32."""
    spec = get_spec(name)
    model = create_model(name, num_classes=3)
    x = np.random.default_rng(0).uniform(0, 255, size=(3, *spec.input_shape)).astype(np.float32)
    out = model.predict(x, verbose=0)
    if spec.aux_losses:  # multi-output: a dict with the classifier under "predictions"
        assert set(out) == {"predictions", *spec.aux_losses}
        p = out["predictions"]
    else:
        p = out
    assert p.shape == (3, 3)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    again = load_model(path).predict(x, verbose=0)
    for key in (out if isinstance(out, dict) else {"predictions": out}):
        got = again[key] if isinstance(again, dict) else again
        want = out[key] if isinstance(out, dict) else out
        np.testing.assert_allclose(got, want, atol=1e-5, err_msg=key)
    classifier = inference_model(model)
    assert len(classifier.outputs) == 1
    tfl = TFLiteModel(convert(classifier, "none"))
    np.testing.assert_allclose(tfl.predict(x), p, atol=1e-4)


def test_registry_errors():
    with pytest.raises(KeyError, match="unknown model 'nope'"):
        create_model("nope", 3)
    with pytest.raises(ValueError, match="num_classes"):
        create_model("learnet", 1)


def test_load_model_rejects_truncated_and_foreign_files(tmp_path):
    from mer_keras.errors import ModelFileError

    model = create_model("learnet", 3)
    good = tmp_path / "m.keras"
    model.save(good)
    bad = tmp_path / "truncated.keras"
    bad.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(ModelFileError, match="truncated.keras"):
        load_model(bad)
    with pytest.raises(ModelFileError, match="no model at"):
        load_model(tmp_path / "missing.keras")
    with pytest.raises(ValueError, match="not a loadable TFLite model"):
        TFLiteModel(bad)


def test_edge_and_runtime_do_not_import_tensorflow():
    """``import edge.pipeline, edge.run`` loads no TensorFlow and no package code that needs it, and
    ``mer_keras.runtime`` (the TFLite wrapper and metadata schema edge shares) loads no TensorFlow."""
    import subprocess
    import sys

    checks = {"edge.pipeline, edge.run": ("tensorflow", "tf_keras", "mer_keras.train", "mer_keras.models",
                                          "mer_keras.registry"),
              "mer_keras.runtime.tflite, mer_keras.runtime.metadata": ("tensorflow", "tf_keras")}
    code = ("import sys\n"
            "import {modules}\n"
            "loaded = sorted(m for m in sys.modules if any(m == f or m.startswith(f + '.') for f in {banned!r}))\n"
            "assert not loaded, loaded\n"
            "print('ok')\n")
    for modules, banned in checks.items():
        res = subprocess.run([sys.executable, "-c", code.format(modules=modules, banned=banned)],
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0 and "ok" in res.stdout, (modules, res.stderr[-2000:])
