"""Every registered model: forward pass, output shape, save/reload, TFLite conversion."""

import numpy as np
import pytest

from mer_keras import create_model, list_models, load_model
from mer_keras.export.tflite import TFLiteModel, convert
from mer_keras.registry import get_spec, inference_model


@pytest.mark.parametrize("name", list_models())
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
    from mer_keras.models.io import ModelFileError

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


def test_edge_model_does_not_import_tensorflow():
    import subprocess
    import sys

    code = "import sys, edge.model; assert 'tensorflow' not in sys.modules and 'mer_keras' not in sys.modules; print('ok')"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr
