"""The TF-free runtime: one metadata.json schema (written and read the same way), and no TensorFlow."""

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from mer_keras.export.metadata import build_metadata
from mer_keras.preprocess.representation import RepresentationConfig
from mer_keras.runtime.metadata import MetadataError, ModelInfo, ModelMetadata

ROOT = Path(__file__).resolve().parents[2]
WINDOW = {"seconds": 0.2, "frames": 20, "fps": 100.0, "stride_frames": 10}


def _meta(rep: RepresentationConfig, window=WINDOW, apex_policy="midpoint") -> dict:
    return build_metadata("ststnet", ["negative", "positive", "surprise"], asdict(rep), rep.input_shape,
                          "synthetic", "loso", {"model.keras": {"format": "keras", "sha256": "0" * 64, "bytes": 1}},
                          window=window, apex_policy=apex_policy)


@pytest.mark.parametrize("rep", [RepresentationConfig(representation="flow", size=28),
                                 RepresentationConfig(representation="sequence", size=32, frames=4)],
                         ids=["flow", "sequence"])
def test_metadata_round_trip(rep, tmp_path):
    """build_metadata -> JSON file -> from_file -> to_dict gives the same dict, keys in the same order."""
    meta = _meta(rep)
    assert list(meta) == ["mer_keras_version", "model", "classes", "input", "preprocessing", "window", "dataset",
                          "protocol", "files"]
    built = ModelMetadata.build("ststnet", ["negative", "positive", "surprise"], asdict(rep), rep.input_shape,
                                "synthetic", "loso", meta["files"], window=WINDOW, apex_policy="midpoint")
    assert built.to_dict() == meta
    assert ModelMetadata.from_dict(meta) == built
    path = tmp_path / "metadata.json"
    path.write_text(json.dumps(meta))
    read = ModelMetadata.from_file(path)
    assert json.dumps(read.to_dict()) == json.dumps(meta)
    assert read.representation == rep
    info = read.model_info()
    assert info == ModelInfo(["negative", "positive", "surprise"], rep, 0.2, 0.5, 100.0, 20)
    assert info.window_frames(200.0) == (40, 20)
    # a key outside the schema is kept, so a file written back loses nothing
    assert ModelMetadata.from_dict({**meta, "note": "x"}).to_dict() == {**meta, "note": "x"}


def test_released_metadata_still_loads():
    for path in sorted((ROOT / "saved_models").glob("*/metadata.json")):
        meta = json.loads(path.read_text())
        read = ModelMetadata.from_file(path)
        assert read.to_dict() == meta and read.model_info().classes == meta["classes"]


def test_invalid_metadata_names_the_field(tmp_path):
    meta = _meta(RepresentationConfig(representation="flow", size=28))
    cases = [
        ({k: v for k, v in meta.items() if k != "preprocessing"}, None, "missing or invalid field 'preprocessing'"),
        ({k: v for k, v in meta.items() if k != "classes"}, None, "missing or invalid field 'classes'"),
        ({**meta, "window": {**WINDOW, "seconds": float("inf")}}, None, "missing or invalid field window.seconds inf"),
        ({**meta, "window": {**WINDOW, "stride_frames": float("nan")}}, None, "window.stride_frames / window.frames nan"),
        ({**meta, "window": {**WINDOW, "fps": -5}}, None, "window.fps -5.0"),
        ({**meta, "window": None}, None, "missing or invalid field 'window (re-export"),
        ({**meta, "window": WINDOW}, float("inf"), "missing or invalid field --window inf"),
    ]
    for i, (content, window_seconds, message) in enumerate(cases):
        path = tmp_path / f"m{i}.json"
        path.write_text(json.dumps(content))
        with pytest.raises(MetadataError) as err:
            ModelMetadata.from_file(path).model_info(window_seconds)
        assert str(err.value).startswith(f"{path}: ") and message in str(err.value), (i, str(err.value))
    # an old file without a window is readable, and usable with an explicit window length
    path = tmp_path / "old.json"
    path.write_text(json.dumps({**meta, "window": None}))
    assert ModelMetadata.from_file(path).model_info(0.3).window_frames(100.0) == (30, 15)
    for content in (b"{", b"\x00\xff\x00"):
        path.write_bytes(content)
        with pytest.raises(MetadataError, match="cannot read metadata"):
            ModelMetadata.from_file(path)
    with pytest.raises(MetadataError, match="cannot read metadata"):
        ModelMetadata.from_file(tmp_path / "missing.json")


def test_edge_reports_metadata_errors_as_edge_input_errors(tmp_path):
    from edge.errors import EdgeInputError
    from edge.model import read_metadata

    path = tmp_path / "metadata.json"
    path.write_text(json.dumps({"classes": ["a"]}))
    with pytest.raises(EdgeInputError, match="missing or invalid field 'preprocessing'"):
        read_metadata(path)


def test_runtime_imports_without_tensorflow():
    """mer_keras.runtime works in an interpreter where TensorFlow and the training code cannot load."""
    code = ("import sys\n"
            "for name in ('tensorflow', 'tf_keras', 'keras', 'tensorflow_model_optimization', 'mer_keras.train',\n"
            "             'mer_keras.models', 'mer_keras.registry'):\n"
            "    sys.modules[name] = None  # any import of these raises ImportError\n"
            "import mer_keras.runtime, mer_keras.runtime.metadata, mer_keras.runtime.tflite\n"
            "from mer_keras.runtime.metadata import ModelMetadata\n"
            "from mer_keras.runtime.tflite import TFLiteModel\n"
            "m = ModelMetadata.build('m', ['a', 'b'], {'representation': 'flow', 'size': 28, 'crop': 128,\n"
            "                        'flow_method': 'dis'}, (28, 28, 3), 'd', 'p', {}, window=None)\n"
            "assert ModelMetadata.from_dict(m.to_dict()) == m\n"
            "print('ok')\n")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr[-2000:]


def test_environment_kinds_and_differences():
    """What mer-keras env records and how runs of several machines are compared (issue 30)."""
    from mer_keras.environment import (
        differences,
        environment_record,
        fold_machines_warning,
        isa_level,
        machine_kind,
    )

    assert isa_level(["avx", "avx2", "fma", "avx512f"]) == "AVX-512" and isa_level(["avx", "avx2"]) == "AVX2"
    assert isa_level([]) == "SSE"
    amd = {"cpu": {"model": "AMD EPYC", "vendor": "AuthenticAMD", "isa": ["avx2", "fma"]},
           "packages": {"tensorflow": "2.19.1", "numpy": "1.26.4"}}
    intel = {"cpu": {"model": "Intel Xeon", "vendor": "GenuineIntel", "isa": ["avx2", "fma", "avx512f", "avx512bw"]},
             "packages": {"tensorflow": "2.19.1", "numpy": "1.26.3"}}
    assert machine_kind(amd) == "AMD EPYC (AuthenticAMD; AVX2: avx2 fma)"
    assert machine_kind(intel) == "Intel Xeon (GenuineIntel; AVX-512: avx512f avx512bw)"
    assert differences({"a": amd, "b": amd}) == []
    lines = differences({"a": amd, "b": intel})
    assert lines[0].startswith("made on different machines: a: AMD EPYC") and "b: Intel Xeon" in lines[0]
    assert lines[1] == "numpy versions differ: a: 1.26.4, b: 1.26.3"
    assert differences({"a": amd, "old": None})[0].startswith("no environment recorded for old")
    assert fold_machines_warning({"s1": "X", "s2": "X", "s3": None}) == []
    assert fold_machines_warning({"s1": "X", "s2": "Y", "s3": "Y"})[0].startswith(
        "folds trained on different machines, pooled into one result: 1 fold(s) on X; 2 fold(s) on Y")
    record = environment_record(with_tensorflow=False)
    assert record["machine_kind"] == machine_kind(record) and "tensorflow" not in record
    assert set(record["cpu"]["isa"]) <= set(__import__("mer_keras.environment").environment.ISA_FLAGS)
