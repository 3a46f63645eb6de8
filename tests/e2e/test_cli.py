"""`mer-keras train` and `evaluate` end to end on a tiny synthetic set, and the error policy."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mer_keras.cli.main import app

runner = CliRunner()


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
    # what the figures depend on besides code and data (issue 30): the machine, the packages, TensorFlow
    from mer_keras.environment import current_machine_kind

    env = config["environment"]
    assert env["machine_kind"] == current_machine_kind() and env["packages"]["tensorflow"]
    assert env["tensorflow"]["onednn"].startswith(("on", "off")) and env["cpu"]["cores"] >= 1
    assert {json.loads(p.read_text())["machine_kind"] for p in (run / "folds").glob("*.json")} == {
        current_machine_kind()}
    assert config["lr"] == 1e-3  # no --lr: the model's registered rate, recorded as used
    report = json.loads((run / "export_report.json").read_text())
    assert report["model_fp32.tflite"]["parity"]["max_abs_diff"] < 1e-4
    # training history: one CSV per fold (epoch, loss, accuracy), learning curves and per-fold UF1 (issue 20)
    for fold in ("synthetic__sub01", "synthetic__sub02", "synthetic__sub03"):
        history = pd.read_csv(run / "history" / f"{fold}.csv")
        assert list(history["epoch"]) == [1, 2] and {"loss", "accuracy"} <= set(history.columns)
        assert history["loss"].notna().all() and history["accuracy"].between(0, 1).all()
    assert (run / "learning_curves.png").stat().st_size > 1000 and (run / "uf1_per_fold.png").stat().st_size > 1000


def test_evaluate_scores_keras_and_tflite(tiny_run, cache_dir, tmp_path):
    run, _ = tiny_run
    res = runner.invoke(app, ["evaluate", run, "--subjects", "2", "--clips", "3", "--cache-dir", str(cache_dir),
                              "--out", str(tmp_path)])  # not RUN/eval-<time>: the shared run stays as trained
    assert res.exit_code == 0, res.output
    out = res.output.strip().splitlines()[-1].strip()
    results = json.loads(open(f"{out}/results.json").read())
    assert set(results["models"]) == {"model.keras", "model_fp32.tflite", "model_int8.tflite"}
    assert results["parity"]["fp32_vs_keras"]["max_abs_diff"] < 1e-4
    assert 0.0 <= results["parity"]["int8_vs_fp32"]["argmax_agreement"] <= 1.0
    assert results["seed"] == 8  # a new synthetic set (run seed + 1), not the training clips


def test_evaluate_says_when_the_run_was_made_on_another_machine(tiny_run, cache_dir, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run[0], run)
    config = json.loads((run / "config.json").read_text())
    config["environment"]["machine_kind"] = "Intel Xeon (GenuineIntel; AVX-512: avx512f)"
    config["environment"]["packages"]["tensorflow"] = "2.18.0"
    (run / "config.json").write_text(json.dumps(config))
    res = runner.invoke(app, ["evaluate", str(run), "--subjects", "2", "--clips", "3", "--cache-dir", str(cache_dir),
                              "--out", str(tmp_path / "eval")])
    assert res.exit_code == 0, res.output
    warned = json.loads((tmp_path / "eval" / "results.json").read_text())["warnings"]
    assert warned[0].startswith(f"made on different machines: {run}: Intel Xeon") and "this machine: " in warned[0]
    assert warned[1].startswith(f"tensorflow versions differ: {run}: 2.18.0, this machine: ")
    assert "warning: made on different machines" in " ".join(res.output.split())


def test_env_reports_the_machine(tmp_path):
    import platform

    res = runner.invoke(app, ["env", "--json", "--no-tensorflow"])
    assert res.exit_code == 0, res.output
    record = json.loads(res.output)
    assert record["cpu"]["machine"] == platform.machine() and record["packages"]["numpy"]
    assert record["machine_kind"].startswith(record["cpu"]["model"]) and "tensorflow" not in record
    res = runner.invoke(app, ["env"])
    assert res.exit_code == 0 and "oneDNN" in res.output and "instruction set" in res.output


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
    (["train", "--variant", "v3"], "--variant 'v3': learnet has variants paper, released"),
    (["train", "--model", "au_convlstm", "--representation", "flow"], "--representation flow does not fit it"),
    (["train", "--model", "htnet", "--variant", "huge"], "--variant 'huge': htnet has variants paper, small, small_narrow"),
    (["train", "--model", "vgg16", "--variant", "paper"], "vgg16 has no variants"),
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


def test_explain_draws_a_finished_run(tiny_flow_run, tmp_path):
    """`mer-keras explain` on the session's STSTNet run: a Grad-CAM PNG, and one-line errors for a
    sample or layer that does not exist (a multi-output model: the slow test below)."""
    from pathlib import Path

    run = tiny_flow_run
    res = runner.invoke(app, ["explain", str(run), "--sample", "sub01/clip002",  # cache dir from the run's config
                              "--out", str(tmp_path / "cam.png")])  # not RUN/explain: the shared run stays as trained
    assert res.exit_code == 0, res.output
    png = Path(res.output.strip().splitlines()[-1].strip())
    assert png == tmp_path / "cam.png" and png.suffix == ".png" and png.stat().st_size > 5000 and png.read_bytes()[:4] == b"\x89PNG"
    res = runner.invoke(app, ["explain", str(run), "--sample", "sub09/clip001"])
    assert res.exit_code == 2 and "no sample 'sub09/clip001'" in res.output
    res = runner.invoke(app, ["explain", str(run), "--sample", "sub01/clip002", "--layer", "nope"])
    assert res.exit_code == 2 and "no layer 'nope'" in res.output


@pytest.mark.slow
def test_multi_output_model_trains_exports_and_explains(cache_dir, tmp_path):
    """feature_refinement (proposal loss) through the CLI: run folder, single-output exports, Grad-CAM PNG.

    About 40 s. The default run covers the parts: the multi-output model learns through the trainer
    (tests/unit/test_targets.py), saves and reloads every output and converts its classifier alone
    (tests/contract/test_models.py[feature_refinement]), and explain works on a run
    (test_explain_draws_a_finished_run)."""
    from pathlib import Path

    from mer_keras import load_model

    res = runner.invoke(app, ["train", "--model", "feature_refinement", "--subjects", "3", "--clips", "4", "--seed", "7",
                              "--epochs", "2", "--aux-weight", "proposal=0.5", "--out", str(tmp_path),
                              "--cache-dir", str(cache_dir)])
    assert res.exit_code == 0, res.output
    run = Path(res.output.strip().splitlines()[-1].strip())
    config = json.loads((run / "config.json").read_text())
    assert config["aux_weights"] == {"proposal": 0.5} and config["representation_config"]["representation"] == "flow"
    assert len(load_model(run).outputs) == 1  # training-only heads are not saved
    report = json.loads((run / "export_report.json").read_text())
    assert report["model_fp32.tflite"]["parity"]["max_abs_diff"] < 1e-4
    # training history: one CSV per fold (epoch, loss, accuracy), learning curves and per-fold UF1 (issue 20)
    for fold in ("synthetic__sub01", "synthetic__sub02", "synthetic__sub03"):
        history = pd.read_csv(run / "history" / f"{fold}.csv")
        assert list(history["epoch"]) == [1, 2] and {"loss", "accuracy"} <= set(history.columns)
        assert history["loss"].notna().all() and history["accuracy"].between(0, 1).all()
    assert (run / "learning_curves.png").stat().st_size > 1000 and (run / "uf1_per_fold.png").stat().st_size > 1000
    res = runner.invoke(app, ["explain", str(run), "--sample", "sub01/clip002"])  # cache dir from the run's config
    assert res.exit_code == 0, res.output
    png = Path(res.output.strip().splitlines()[-1].strip())
    assert png.suffix == ".png" and png.stat().st_size > 5000 and png.read_bytes()[:4] == b"\x89PNG"
    res = runner.invoke(app, ["explain", str(run), "--sample", "sub09/clip001"])
    assert res.exit_code == 2 and "no sample 'sub09/clip001'" in res.output
    res = runner.invoke(app, ["explain", str(run), "--sample", "sub01/clip002", "--layer", "nope"])
    assert res.exit_code == 2 and "no layer 'nope'" in res.output


def test_transfer_learning_options(tiny_flow_run, cache_dir, tmp_path):
    import shutil

    run = str(tiny_flow_run)  # STSTNet: a fold of it trains in about 2 s
    out = tmp_path / "runs"
    base = ["train", "--model", "ststnet", "--flow-method", "dis", "--subjects", "3", "--clips", "4", "--seed", "7",
            "--epochs", "1", "--folds", "sub01", "--no-export", "--cache-dir", str(cache_dir), "--out", str(out)]
    # The tiny run's final model saw every synthetic subject: starting a synthetic LOSO from it leaks.
    res = runner.invoke(app, base + ["--init-from", run])
    assert res.exit_code == 2 and "would leak them" in res.output
    other = tmp_path / "pretrained"  # the same weights, declared as pre-trained on another dataset
    shutil.copytree(run, other)
    meta = json.loads((other / "metadata.json").read_text())
    (other / "metadata.json").write_text(json.dumps({**meta, "dataset": "casme2"}))
    res = runner.invoke(app, base + ["--init-from", str(other), "--freeze-until", "stream1_conv"])
    assert res.exit_code == 0, res.output
    assert "layers copied" in res.output and "3 frozen" in res.output  # input, input_scaling, stream1_conv
    res = runner.invoke(app, base + ["--freeze-until", "conv1"])
    assert res.exit_code == 2 and "--freeze-until needs --init-from" in res.output
    res = runner.invoke(app, base + ["--aux-weight", "proposal"])
    assert res.exit_code == 2 and "OUTPUT=WEIGHT" in res.output


def test_an_interrupted_run_resumes_without_redoing_finished_folds(tiny_flow_run, tmp_path):
    import shutil

    run = tmp_path / tiny_flow_run.name  # a copy of the session's finished STSTNet run
    shutil.copytree(tiny_flow_run, run)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "export": False}))  # about folds: no export needed
    folds = sorted((run / "folds").glob("*.json"))
    assert [f.name for f in folds] == ["synthetic__sub01.json", "synthetic__sub02.json", "synthetic__sub03.json"]
    # Simulate a kill during fold 3: its file and everything written after it are missing.
    for name in ("metadata.json", "results.json", "model.keras", "predictions.csv"):
        (run / name).unlink()
    fold3 = json.loads(folds[2].read_text())
    folds[2].unlink()
    marked = json.loads(folds[0].read_text())
    marked["probabilities"] = [[1.0, 0.0, 0.0]] * len(marked["probabilities"])  # proves fold 1 is reused
    folds[0].write_text(json.dumps(marked))
    res = runner.invoke(app, ["train", "--resume", str(run)])
    assert res.exit_code == 0, res.output
    assert "2 fold(s) already done" in res.output
    preds = pd.read_csv(run / "predictions.csv")
    assert (preds[preds["subject"] == "sub01"]["p_negative"] == 1.0).all()
    assert folds[2].exists() and (run / "metadata.json").exists()
    # the fold trained again (alone now, with two others before), as in the uninterrupted run
    from tests.helpers.golden import fold_differences

    assert not fold_differences(fold3, json.loads(folds[2].read_text()))
    history = pd.read_csv(run / "history" / "synthetic__sub03.csv")  # folds trained at once: one CSV each
    assert list(history["epoch"]) == [1, 2] and history["loss"].notna().all()
    res = runner.invoke(app, ["train", "--resume", str(run)])
    assert res.exit_code == 2 and "nothing to resume" in res.output
    marked["test_keys"] = [k + "-renamed" for k in marked["test_keys"]]  # the data changed since
    folds[0].write_text(json.dumps(marked))
    (run / "metadata.json").unlink()
    res = runner.invoke(app, ["train", "--resume", str(run)])
    assert res.exit_code == 2 and "synthetic__sub01.json: its test clips differ" in res.output


def test_macro_expression_pretraining_run(cache_dir, tmp_path):
    """``--synthetic-expression macro --folds none``: only a final model, fitted on macro-expressions (issue 19)."""
    from pathlib import Path

    res = runner.invoke(app, ["train", "--model", "ststnet", "--flow-method", "dis", "--synthetic-expression", "macro",
                              "--subjects", "2", "--clips", "3", "--epochs", "1", "--folds", "none", "--no-export",
                              "--cache-dir", str(cache_dir), "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "6 macro-expression clips" in res.output
    run = Path(res.output.strip().splitlines()[-1].strip())
    assert json.loads((run / "config.json").read_text())["synthetic_expression"] == "macro"
    assert (run / "model.keras").is_file()
    assert not (run / "folds").exists() or not list((run / "folds").iterdir())  # no LOSO fold: pretraining only


def test_tensorboard_logs_and_a_subset_of_folds_says_so(tiny_flow_run, cache_dir, tmp_path):
    res = runner.invoke(app, ["train", "--model", "ststnet", "--subjects", "3", "--clips", "4", "--seed", "7",
                              "--epochs", "1", "--flow-method", "dis", "--folds", "sub02", "--tensorboard",
                              "--out", str(tmp_path), "--cache-dir", str(cache_dir)])
    assert res.exit_code == 0, res.output
    run = Path(res.output.strip().splitlines()[-1].strip())
    assert list((run / "tensorboard" / "synthetic__sub02").rglob("events.out.tfevents.*"))
    assert list(pd.read_csv(run / "history" / "synthetic__sub02.csv")["epoch"]) == [1]
    assert (run / "learning_curves.png").is_file() and (run / "uf1_per_fold.png").is_file()


def test_folds_trained_together_write_one_tensorboard_run_per_subject(tiny_flow_run, cache_dir, tmp_path):
    """STSTNet's three folds train as one program; TensorBoard still gets one run per subject, with
    that fold's own training loss (the one in its history CSV) at every epoch."""
    import tensorflow as tf

    res = runner.invoke(app, ["train", "--model", "ststnet", "--subjects", "3", "--clips", "4", "--seed", "7",
                              "--epochs", "2", "--flow-method", "dis", "--parallel-folds", "3", "--tensorboard",
                              "--no-final", "--out", str(tmp_path), "--cache-dir", str(cache_dir)])
    assert res.exit_code == 0, res.output
    run = Path(res.output.strip().splitlines()[-1].strip())
    for sub in ("sub01", "sub02", "sub03"):
        events = sorted((run / "tensorboard" / f"synthetic__{sub}").rglob("events.out.tfevents.*"))
        assert events, sub
        losses = {}
        for record in tf.data.TFRecordDataset([str(e) for e in events]):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.tag == "epoch_loss":
                    losses[event.step] = float(tf.make_ndarray(value.tensor))
        history = pd.read_csv(run / "history" / f"synthetic__{sub}.csv")
        assert sorted(losses) == [0, 1]
        np.testing.assert_allclose([losses[0], losses[1]], history["loss"].to_numpy(), rtol=1e-6)


def test_the_final_model_trained_with_the_folds_is_saved_and_said_once(cache_dir, tmp_path):
    """STSTNet's folds and its final model train in one program: the run saves and exports the final
    model, says where it was fitted, and does not claim that there is none."""
    res = runner.invoke(app, ["train", "--model", "ststnet", "--subjects", "3", "--clips", "4", "--seed", "7",
                              "--epochs", "1", "--flow-method", "dis", "--out", str(tmp_path),
                              "--cache-dir", str(cache_dir)])
    assert res.exit_code == 0, res.output
    run = Path(res.output.strip().splitlines()[-1].strip())
    assert "the final model was fitted on all training subjects with the folds" in res.output
    assert "no final model" not in res.output
    meta = json.loads((run / "metadata.json").read_text())
    assert {"model.keras", "model_fp32.tflite", "model_int8.tflite"} <= set(meta["files"])
