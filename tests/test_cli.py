"""`mer-keras train` and `evaluate` end to end on a tiny synthetic set, and the error policy."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mer_keras.cli.main import app

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, cache_dir):
    out = tmp_path_factory.mktemp("runs")
    res = runner.invoke(app, ["train", "--subjects", "3", "--clips", "4", "--seed", "7", "--epochs", "2",
                              "--out", str(out), "--cache-dir", str(cache_dir)])
    assert res.exit_code == 0, res.output
    run = res.output.strip().splitlines()[-1].strip()
    return run, res.output


def test_train_writes_the_run_folder(tiny_run):
    from pathlib import Path

    run, output = tiny_run
    run = Path(run)
    for name in ("config.json", "results.json", "predictions.csv", "confusion_matrix.png", "model.keras",
                 "metadata.json", "model_fp32.tflite", "model_int8.tflite"):
        assert (run / name).is_file(), name
    results = json.loads((run / "results.json").read_text())
    assert set(results) >= {"model", "dataset", "protocol", "classes", "overall", "folds"}
    assert results["protocol"] == "loso" and results["classes"] == ["negative", "positive", "surprise"]
    assert set(results["overall"]) == {"accuracy", "uf1", "uar"}
    assert [f["subject"] for f in results["folds"]] == ["synthetic/sub01", "synthetic/sub02", "synthetic/sub03"]
    preds = pd.read_csv(run / "predictions.csv")
    assert len(preds) == 12 and set(preds["prediction"]) <= set(results["classes"])
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["preprocessing"]["representation"] == "dynamic_image" and meta["input"]["shape"] == [112, 112, 3]
    assert meta["files"]["model_int8.tflite"]["quantization"]["input"][0] > 0
    config = json.loads((run / "config.json").read_text())
    assert config["epochs"] == 2 and config["model"] == "learnet"
    report = json.loads((run / "export_report.json").read_text())
    assert report["model_fp32.tflite"]["parity"]["max_abs_diff"] < 1e-4


def test_evaluate_scores_keras_and_tflite(tiny_run, cache_dir):
    run, _ = tiny_run
    res = runner.invoke(app, ["evaluate", run, "--subjects", "2", "--clips", "3", "--cache-dir", str(cache_dir)])
    assert res.exit_code == 0, res.output
    out = res.output.strip().splitlines()[-1].strip()
    results = json.loads(open(f"{out}/results.json").read())
    assert set(results["models"]) == {"model.keras", "model_fp32.tflite", "model_int8.tflite"}
    assert results["parity"]["fp32_vs_keras"]["max_abs_diff"] < 1e-4
    assert 0.0 <= results["parity"]["int8_vs_fp32"]["argmax_agreement"] <= 1.0
    assert results["seed"] == 8  # a new synthetic set (run seed + 1), not the training clips


def test_evaluate_names_a_broken_metadata_file(tiny_run, tmp_path):
    import shutil

    run, _ = tiny_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "metadata.json").write_text("{ truncated")
    res = runner.invoke(app, ["evaluate", str(copy)])
    assert res.exit_code == 2 and "metadata.json: not readable JSON" in res.output


@pytest.mark.parametrize("args, message", [
    (["evaluate", "/nonexistent/run"], "no such run folder"),
    (["train", "--model", "nope"], "nope"),
    (["train", "--variant", "v3"], "unknown LEARNet variant 'v3'"),
    (["train", "--folds", "sub99", "--subjects", "3", "--clips", "4", "--seed", "7", "--epochs", "1"], "unknown subject"),
])
def test_bad_input_is_one_line_and_exit_2(args, message, cache_dir, tmp_path):
    if args[0] == "train":
        args = args + ["--cache-dir", str(cache_dir), "--out", str(tmp_path)]
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert "Traceback" not in res.output
    if "Usage:" not in res.output:  # typer's own usage errors are boxed; library errors are one line
        assert len([line for line in res.output.splitlines() if line.startswith("error:")]) == 1
    assert not list(tmp_path.iterdir())  # no run folder left behind by a rejected run
