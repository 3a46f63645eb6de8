"""The released real-data models (``saved_models/*_megc2019_composite``): complete, consistent with
their metadata, small, runnable by ``edge.run`` without TensorFlow, and scored by ``evaluate``."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT.parent / "shared" / "data" / "megc2019_composite_flow"
RELEASED = sorted(p for p in (ROOT / "saved_models").glob("*_megc2019_composite") if p.is_dir())
FILES = ("model.keras", "model_fp32.tflite", "model_int8.tflite", "export_report.json", "metadata.json",
         "results.json", "config.json", "MODEL_CARD.md")


def test_models_trained_on_real_micro_expressions_are_released():
    assert [p.name for p in RELEASED] == ["ststnet_ensemble_megc2019_composite", "ststnet_megc2019_composite"]


@pytest.mark.parametrize("folder", RELEASED, ids=lambda p: p.name)
def test_a_released_model_is_complete_small_and_matches_its_metadata(folder):
    for name in FILES:
        assert (folder / name).is_file(), name
    meta = json.loads((folder / "metadata.json").read_text())
    for name, info in meta["files"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == info["sha256"], name
    assert meta["classes"] == ["negative", "positive", "surprise"] and meta["dataset"] == "megc2019-flow"
    assert meta["preprocessing"]["flow_encoding"] == "minmax" and meta["window"]["seconds"] == 0.5
    results = json.loads((folder / "results.json").read_text())
    assert results["n_samples"] == 442 and set(results["per_database"]) == {"casme2", "samm", "smic"}
    assert sum(p.stat().st_size for p in folder.iterdir()) < 1_000_000
    assert not (folder / "predictions.csv").exists()  # no per-clip listing of the licensed databases
    card = (folder / "MODEL_CARD.md").read_text()
    assert f"{results['overall']['uf1']:.3f}" in card and "research" in card


@pytest.mark.parametrize("folder", [pytest.param(p, marks=[] if "ensemble" in p.name else [pytest.mark.slow])
                                    for p in RELEASED], ids=lambda p: p.name)
def test_a_released_model_runs_in_the_edge_runner(folder):
    out = subprocess.run([sys.executable, "-m", "edge.run", "--model", str(folder / "model_int8.tflite"),
                          "--video", str(ROOT / "edge" / "sample.mp4"), "--max-frames", "100"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert lines and all(line["label"] in ("negative", "positive", "surprise") for line in lines if "label" in line)


@pytest.mark.skipif(not REAL.is_dir(), reason=f"the real composite flow set is not at {REAL}")
@pytest.mark.parametrize("folder", RELEASED, ids=lambda p: p.name)
def test_a_released_model_is_scored_by_evaluate_on_the_real_set(folder, tmp_path):
    from typer.testing import CliRunner

    from mer_keras.cli.main import app

    res = CliRunner().invoke(app, ["evaluate", str(folder), "--data", "megc2019-flow", "--root", str(REAL),
                                   "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    out = json.loads((tmp_path / "results.json").read_text())
    assert out["n_samples"] == 442
    assert out["parity"]["fp32_vs_keras"]["max_abs_diff"] < 1e-4
    assert out["parity"]["int8_vs_fp32"]["argmax_agreement"] > 0.9


PRETRAINED = ROOT / "saved_models" / "micro_attention_synthetic_macro"


def test_released_macro_pretraining_weights_initialise_micro_attention():
    """The macro-expression weights (issue 19) match their metadata and start a micro_attention
    model on the composite flow images: every layer copied, the values those of the file."""
    from mer_keras import create_model
    from mer_keras.train.transfer import WEIGHTS_FILE, initialise_from, read_layer_weights

    meta = json.loads((PRETRAINED / "metadata.json").read_text())
    info = meta["files"][WEIGHTS_FILE]
    assert hashlib.sha256((PRETRAINED / WEIGHTS_FILE).read_bytes()).hexdigest() == info["sha256"]
    assert meta["model"] == "micro_attention" and meta["dataset"] == "synthetic"
    config = json.loads((PRETRAINED / "config.json").read_text())
    assert config["synthetic_expression"] == "macro" and config["folds"] == ["none"]
    model = create_model("micro_attention", 3, input_shape=tuple(meta["input"]["shape"]))
    report = initialise_from(model, str(PRETRAINED))
    assert not report["skipped"] and len(report["copied"]) == 30
    assert sum(w.size for w in model.get_weights()) == info["weights"]
    _, stored = read_layer_weights(PRETRAINED / WEIGHTS_FILE)
    np.testing.assert_array_equal(model.get_layer("stem_conv").get_weights()[0],
                                  stored["stem_conv"][0].astype(np.float32))
    assert (PRETRAINED / "MODEL_CARD.md").is_file()


ALL_RELEASED = sorted(p for p in (ROOT / "saved_models").iterdir() if p.is_dir())


@pytest.mark.parametrize("folder", ALL_RELEASED, ids=lambda p: p.name)
def test_every_released_folder_is_usable_by_predict_and_says_what_it_lacks(folder, short_sample):
    """Each folder under saved_models/ runs through ``predict`` on the edge sample video, or (initial
    weights) says it is not a classifier; a folder without model.keras says how to get it."""
    import mer_keras
    from mer_keras.errors import ModelFileError
    from mer_keras.models.io import resolve_model_path

    meta = json.loads((folder / "metadata.json").read_text())
    for name in meta["files"]:
        assert (folder / name).is_file(), f"{folder.name}/metadata.json lists {name}, which is missing"
    if not (folder / "model.keras").is_file():
        with pytest.raises(ModelFileError) as err:
            resolve_model_path(folder)
        assert "no model at" in str(err.value) and (meta.get("keras_model") or "weights_fp16.h5" in meta["files"])
    if "weights_fp16.h5" in meta["files"]:
        with pytest.raises(ModelFileError, match="initial weights for --init-from, not a classifier"):
            mer_keras.predict(folder, [short_sample])
        return
    table = mer_keras.predict(folder, [short_sample])
    assert len(table) == 1 and table.loc[0, "predicted"] in meta["classes"]
    np.testing.assert_allclose(table[[f"p_{c}" for c in meta["classes"]]].sum(1), 1.0, atol=1e-3)


@pytest.mark.slow
def test_the_synthetic_demonstration_model_is_scored_by_evaluate_and_run_by_edge(tmp_path):
    """Slow (about 30 s: new synthetic clips, and the runner in a subprocess); the default run checks
    the same commands on the real-data models and predict on every folder."""
    from typer.testing import CliRunner

    from mer_keras.cli.main import app

    folder = ROOT / "saved_models" / "learnet_synthetic_loso"
    res = CliRunner().invoke(app, ["evaluate", str(folder), "--subjects", "2", "--clips", "3", "--out",
                                   str(tmp_path / "ev")])
    assert res.exit_code == 0, res.output
    results = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert set(results["models"]) == {"model_fp32.tflite", "model_int8.tflite"} and results["n_samples"] == 6
    out = subprocess.run([sys.executable, "-m", "edge.run", "--model", str(folder / "model_int8.tflite"),
                          "--video", str(ROOT / "edge" / "sample.mp4"), "--max-frames", "60"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]


def test_the_sample_video_shows_the_runner_finding_and_classifying_its_expressions():
    """First contact (saved_models/README.md's command): on edge/sample.mp4 the default spot mode
    finds micro-expressions of the video's ground truth (edge/sample.json) and classifies them with
    the synthetic demonstration model. Tolerant of the CPU: at least two of the three true
    micro-expressions matched (IoU >= 0.5, MEGC's criterion), at least one of them classified as
    coded; on the machine of docs/EDGE.md two of three, both classified as coded."""
    from mer_keras.runtime.intervals import Interval, iou

    truth = json.loads((ROOT / "edge" / "sample.json").read_text())
    micro = [e for e in truth["events"] if e["type"] == "micro"]
    assert sorted(e["emotion"] for e in micro) == ["negative", "positive", "surprise"]
    out = subprocess.run([sys.executable, "-m", "edge.run", "--model",
                          str(ROOT / "saved_models" / "learnet_synthetic_loso" / "model_int8.tflite"),
                          "--video", str(ROOT / "edge" / "sample.mp4")],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    records = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    spotted = [r for r in records if r["event"] == "micro"]
    matched = []
    for e in micro:
        true = Interval(e["onset"], e["apex"], e["offset"], "micro")
        hits = [r for r in spotted if iou(true, Interval(r["frames"][0], r["apex"], r["frames"][1], "micro")) >= 0.5]
        if hits:
            matched.append((e["emotion"], hits[0]["label"]))
    assert len(matched) >= 2, (matched, spotted)
    assert any(coded == predicted for coded, predicted in matched), matched
    assert "nothing_spotted" not in records[-1]


@pytest.mark.slow
def test_a_video_too_short_for_spotting_says_so_in_one_line():
    """The first 1.44 s of the sample: nothing can be spotted, and the runner says why and what to try."""
    out = subprocess.run([sys.executable, "-m", "edge.run", "--model",
                          str(ROOT / "saved_models" / "learnet_synthetic_loso" / "model_int8.tflite"),
                          "--video", str(ROOT / "edge" / "sample.mp4"), "--max-frames", "144"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("nothing spotted: the video is 1.44 s") and "--mode windows" in \
        lines[0], out.stderr
    assert json.loads(out.stdout.splitlines()[-1])["nothing_spotted"] == lines[0]


def test_predict_says_when_a_long_video_is_one_clip_and_why_spot_found_nothing(tmp_path, short_sample):
    """Plain predict on the sample's first 1.44 s (4.6 times the model's 0.315 s window): one row,
    and a note that --spot classifies each expression; predict --spot on it: no row, and the
    one-line reason."""
    from typer.testing import CliRunner

    from mer_keras.cli.main import app

    model = ROOT / "saved_models" / "learnet_synthetic_loso"
    res = CliRunner().invoke(app, ["predict", str(model), str(short_sample), "--cache-dir", str(tmp_path / "cache")])
    assert res.exit_code == 0, res.output
    assert "is classified as one clip (one label); --spot finds and classifies each expression" in \
        " ".join(res.output.split())
    short = short_sample
    res = CliRunner().invoke(app, ["predict", str(model), str(short), "--spot", "--cache-dir", str(tmp_path / "cache")])
    assert res.exit_code == 0, res.output
    assert "nothing spotted: the video is 1.44 s" in " ".join(res.output.split())
