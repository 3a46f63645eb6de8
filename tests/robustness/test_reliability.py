"""Fault tests of the main job: same seed -> same run, SIGKILL mid-fold -> resume to the same result,
folds spread over runs -> merge to the same result, mixed precision.

The default run compares against the session's ``tiny_flow_run`` (STSTNet, 2 epochs, a few seconds
per fold): a run stopped mid-fold and resumed, and folds spread over runs and merged, must give its
results exactly. The same checks on a model with dropout over 30 epochs, with a real SIGKILL of a
subprocess, are slow (``pytest -m slow``)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mer_keras.cli.main import app
from mer_keras.train.callbacks import ProgressCallback as ORIGINAL_PROGRESS  # the class before any monkeypatch
from tests.helpers.golden import SAME_FOLD_ATOL, fold_differences

runner = CliRunner()
#: A model with dropout (its masks must replay too), a few seconds per fold, one fold at a time (a
#: group of folds trained at once: test_a_group_of_folds_stopped_mid_way_resumes_from_its_backup).
BASE = ["train", "--model", "off_apexnet", "--subjects", "3", "--clips", "4", "--seed", "7", "--epochs", "30",
        "--no-export", "--backup-minutes", "0", "--parallel-folds", "1"]
#: The options of the session's ``tiny_flow_run`` (tests/conftest.py) without its export: runs
#: with these options must reproduce its folds exactly.
FLOW = ["train", "--model", "ststnet", "--subjects", "3", "--clips", "4", "--seed", "7", "--epochs", "2",
        "--flow-method", "dis", "--no-export", "--backup-minutes", "0"]


def train(tmp: Path, cache_dir, *extra, base=BASE) -> Path:
    res = runner.invoke(app, [*base, "--out", str(tmp), "--cache-dir", str(cache_dir), *extra])
    assert res.exit_code == 0, res.output
    return Path(res.output.strip().splitlines()[-1].strip())


def outcome(run: Path) -> tuple[dict, list, pd.DataFrame]:
    results = json.loads((run / "results.json").read_text())
    preds = pd.read_csv(run / "predictions.csv").sort_values(["subject", "clip"]).reset_index(drop=True)
    return results["overall"], [f["final_train_loss"] for f in sorted(results["folds"], key=lambda f: f["subject"])], preds


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cache_dir):
    return train(tmp_path_factory.mktemp("reference"), cache_dir)


@pytest.mark.slow
def test_the_same_seed_gives_the_same_run(reference, tmp_path, cache_dir):
    again = train(tmp_path, cache_dir)
    (m1, l1, p1), (m2, l2, p2) = outcome(reference), outcome(again)
    assert m1 == m2 and l1 == l2
    pd.testing.assert_frame_equal(p1, p2, check_exact=True)
    other = train(tmp_path / "other", cache_dir, "--seed", "8")  # another seed is another run (other data too)
    assert outcome(other)[1] != l1


@pytest.mark.slow
def test_a_run_killed_mid_fold_resumes_to_the_uninterrupted_result(reference, tmp_path, cache_dir):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen([sys.executable, "-m", "mer_keras.cli.main", *BASE, "--out", str(tmp_path),
                             "--cache-dir", str(cache_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=env)
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            marks = list(tmp_path.glob("*/backup/synthetic__sub02/chief/checkpoint"))
            if marks and len(list(marks[0].parent.glob("ckpt-*.index"))):
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before it could be killed mid-fold"
        time.sleep(0.2)  # a few more epochs
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    run = next(tmp_path.glob("*-off_apexnet-synthetic"))
    assert sorted(p.name for p in (run / "folds").glob("*.json")) == ["synthetic__sub01.json"]
    backups = list((run / "backup" / "synthetic__sub02" / "chief").glob("ckpt-*.index"))
    assert backups, "no backup of the fold in progress"
    epoch = int(backups[0].name.split("-")[1].split(".")[0])
    assert 1 <= epoch < 30  # killed mid-fold: some epochs backed up, not all
    res = runner.invoke(app, ["train", "--resume", str(run)])
    assert res.exit_code == 0, res.output
    assert "1 fold(s) already done" in res.output
    (m1, l1, p1), (m2, l2, p2) = outcome(reference), outcome(run)
    assert m1 == m2 and l1 == l2
    pd.testing.assert_frame_equal(p1, p2, check_exact=True)
    assert not (run / "backup").exists() and (run / "metadata.json").exists()


class Stop(Exception):
    """Stands for a kill: raised at the end of an epoch, after that epoch's backup."""


def stop_after_first_epoch(monkeypatch) -> None:
    """Make the job's progress callback raise :class:`Stop` at the end of epoch 0 (the backup
    callback runs first: epoch 0 is saved)."""
    from mer_keras.train import callbacks

    class StopAfterFirstEpoch(ORIGINAL_PROGRESS):
        def on_epoch_end(self, epoch, logs=None):
            super().on_epoch_end(epoch, logs)
            if epoch == 0:
                raise Stop("stopped after the first epoch")

    monkeypatch.setattr(callbacks, "ProgressCallback", StopAfterFirstEpoch)


def record_epochs(monkeypatch) -> list[list[int]]:
    """Make the job's progress callback record, per fit, the epochs it runs; returns that list."""
    from mer_keras.train import callbacks

    epochs: list[list[int]] = []

    class RecordEpochs(ORIGINAL_PROGRESS):
        def on_train_begin(self, logs=None):
            epochs.append([])

        def on_epoch_end(self, epoch, logs=None):
            super().on_epoch_end(epoch, logs)
            epochs[-1].append(epoch)

    monkeypatch.setattr(callbacks, "ProgressCallback", RecordEpochs)
    return epochs


def test_a_run_stopped_mid_fold_resumes_from_its_backup(tiny_flow_run, tmp_path, cache_dir, monkeypatch):
    """In-process version of the SIGKILL test (slow): a ``--folds sub02`` job stops after the first
    epoch of its fold, whose backup is then the only trace of it; ``--resume`` continues the fold
    from the backup (its second epoch only) and ends with the fold file of the uninterrupted run with
    the same options (``tiny_flow_run``), byte for byte. (Finished folds kept on resume:
    tests/e2e/test_cli.py::test_an_interrupted_run_resumes_without_redoing_finished_folds.)"""
    from mer_keras.train.fit import backup_epoch

    stop_after_first_epoch(monkeypatch)
    res = runner.invoke(app, [*FLOW, "--folds", "sub02", "--out", str(tmp_path), "--cache-dir", str(cache_dir)])
    assert isinstance(res.exception, Stop), res.output
    run = next(tmp_path.glob("*-ststnet-synthetic"))
    assert not list((run / "folds").glob("*.json"))
    assert list((run / "backup" / "synthetic__sub02" / "chief").glob("ckpt-*.index")), "no backup of the fold"
    assert backup_epoch(run / "backup" / "synthetic__sub02") == 1  # the fold continues at its second epoch

    epochs = record_epochs(monkeypatch)  # per fit of the resumed job, the epochs it ran
    res = runner.invoke(app, ["train", "--resume", str(run)])
    assert res.exit_code == 0, res.output
    assert epochs == [[1]]  # from the backup: the second epoch only
    name = "synthetic__sub02.json"  # trained alone here, with two other folds in tiny_flow_run
    assert not fold_differences(json.loads((tiny_flow_run / "folds" / name).read_text()),
                                json.loads((run / "folds" / name).read_text()))
    assert not (run / "backup").exists() and (run / "results.json").exists()


@pytest.fixture(scope="module")
def flow_sub01(tmp_path_factory, cache_dir):
    """A finished ``--folds sub01`` run with the options of ``tiny_flow_run``."""
    return train(tmp_path_factory.mktemp("sub01"), cache_dir, "--folds", "sub01", base=FLOW)


def test_folds_spread_over_runs_merge_to_the_full_run(tiny_flow_run, flow_sub01, tmp_path, cache_dir):
    part1 = flow_sub01
    part2 = train(tmp_path, cache_dir, "--folds", "synthetic/sub02,sub03", base=FLOW)
    final = train(tmp_path, cache_dir, "--folds", "none", base=FLOW)
    assert not (part1 / "model.keras").exists() and (final / "model.keras").exists()
    assert not (final / "results.json").exists()
    res = runner.invoke(app, ["merge", str(part1), str(part2), str(final), "--out", str(tmp_path / "merged")])
    assert res.exit_code == 0, res.output
    merged = Path(res.output.strip().splitlines()[-1].strip())
    (m1, l1, p1), (m2, l2, p2) = outcome(tiny_flow_run), outcome(merged)  # the same options in one run
    # folds trained alone, two together and three together: the same results within float tolerance
    assert m1 == m2 and l2 == pytest.approx(l1, abs=SAME_FOLD_ATOL)
    pd.testing.assert_frame_equal(p1[p2.columns], p2, check_exact=False, atol=SAME_FOLD_ATOL, rtol=0)
    assert (merged / "model.keras").exists() and (merged / "metadata.json").exists()
    # Refusals: missing folds, another experiment, a conflicting duplicate fold.
    res = runner.invoke(app, ["merge", str(part1)])
    assert res.exit_code == 2 and "folds missing: synthetic/sub02, synthetic/sub03" in res.output
    res = runner.invoke(app, ["merge", str(part1), "--partial", "--out", str(tmp_path / "partial")])
    assert res.exit_code == 0 and json.loads(
        (Path(res.output.strip().splitlines()[-1].strip()) / "results.json").read_text())["n_samples"] == 4
    other = tmp_path / "other"  # a run of another experiment: as part2, with another number of epochs
    shutil.copytree(part2, other)
    (other / "config.json").write_text(json.dumps({**json.loads((part2 / "config.json").read_text()), "epochs": 1}))
    res = runner.invoke(app, ["merge", str(part1), str(other)])
    assert res.exit_code == 2 and "epochs is 1 but" in res.output
    clash = tmp_path / "clash"
    clash.mkdir()
    (clash / "config.json").write_text((part1 / "config.json").read_text())
    fold = json.loads((part1 / "folds" / "synthetic__sub01.json").read_text())
    fold["probabilities"] = np.roll(np.array(fold["probabilities"]), 1, axis=1).tolist()
    (clash / "folds").mkdir()
    (clash / "folds" / "synthetic__sub01.json").write_text(json.dumps(fold))
    res = runner.invoke(app, ["merge", str(part1), str(clash)])
    assert res.exit_code == 2 and "fold synthetic/sub01 is in" in res.output
    # folds from another machine kind merge, and the result says so (issue 30)
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(part2, elsewhere)
    config = json.loads((part2 / "config.json").read_text())
    config["environment"] = {**config["environment"], "machine_kind": "Intel Xeon (GenuineIntel; AVX-512: avx512f)"}
    (elsewhere / "config.json").write_text(json.dumps(config))
    for path in (elsewhere / "folds").glob("*.json"):
        path.write_text(json.dumps({**json.loads(path.read_text()), "machine_kind": config["environment"]["machine_kind"]}))
    res = runner.invoke(app, ["merge", str(part1), str(elsewhere), "--out", str(tmp_path / "mixed")])
    assert res.exit_code == 0, res.output
    warned = json.loads((Path(res.output.strip().splitlines()[-1].strip()) / "results.json").read_text())["warnings"]
    assert any(w.startswith("made on different machines") and "Intel Xeon" in w for w in warned), warned
    assert any(w.startswith("folds trained on different machines") and "2 fold(s) on Intel Xeon" in w
               for w in warned), warned
    assert "warning: made on different machines" in " ".join(res.output.split())


def test_a_finished_folds_run_is_complete(flow_sub01):
    res = runner.invoke(app, ["train", "--resume", str(flow_sub01)])
    assert res.exit_code == 2 and "nothing to resume" in res.output


def test_mixed_precision_keeps_float32_outputs_and_exports(tmp_path):
    """Every zoo model built under mixed_float16 has float32 outputs; a model fitted under it is saved
    (``local_float32_copy``, as the final model of a run is) and exported in float32, and its TFLite
    export matches Keras. The same through ``mer-keras train --mixed-precision``: the slow test below."""
    from mer_keras.export.tflite import convert
    from mer_keras.factory import create_model, get_spec, list_models
    from mer_keras.models.io import load_model
    from mer_keras.runtime.tflite import TFLiteModel
    from mer_keras.train.determinism import precision_policy
    from mer_keras.train.fit import TrainConfig, fit_model, local_float32_copy

    with precision_policy(True):
        for name in list_models():
            if name in ("vgg16", "htnet"):  # the largest: same output head code, slow to build
                continue
            model = create_model(name, 3, input_shape=get_spec(name).input_shape)
            assert {t.dtype.name for t in model.outputs} == {"float32"}, name
            assert any(layer.dtype_policy.name == "mixed_float16" for layer in model.layers), name
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 255, (12, 28, 28, 3)).astype(np.float32), np.arange(12) % 3
    cfg = TrainConfig(model="ststnet", epochs=1, batch_size=4, mixed_precision=True)
    fitted = fit_model(x, y, 3, cfg)
    assert any(layer.dtype_policy.name == "mixed_float16" for layer in fitted.layers)
    saved = local_float32_copy(fitted, cfg)
    assert {layer.dtype_policy.name for layer in saved.layers} == {"float32"}
    saved.save(tmp_path / "model.keras")
    import zipfile

    config = json.loads(zipfile.ZipFile(tmp_path / "model.keras").read("config.json"))
    assert {layer["config"]["dtype"] for layer in config["config"]["layers"] if "dtype" in layer["config"]} == {"float32"}
    keras_p = load_model(tmp_path / "model.keras").predict(x, verbose=0)
    np.testing.assert_allclose(keras_p, fitted.predict(x, verbose=0), atol=2e-3)  # float16 compute vs float32
    np.testing.assert_allclose(TFLiteModel(convert(saved, "none")).predict(x), keras_p, atol=1e-4)


@pytest.mark.slow
def test_a_mixed_precision_run_saves_and_exports_float32(tmp_path, cache_dir):
    res = runner.invoke(app, ["train", "--model", "ststnet", "--subjects", "3", "--clips", "4", "--seed", "7",
                              "--epochs", "2", "--folds", "none", "--mixed-precision", "--out", str(tmp_path),
                              "--cache-dir", str(cache_dir)])
    assert res.exit_code == 0, res.output
    run = Path(res.output.strip().splitlines()[-1].strip())
    import zipfile

    config = json.loads(zipfile.ZipFile(run / "model.keras").read("config.json"))
    assert {layer["config"]["dtype"] for layer in config["config"]["layers"] if "dtype" in layer["config"]} == {"float32"}
    report = json.loads((run / "export_report.json").read_text())
    assert report["model_fp32.tflite"]["parity"]["within_tolerance"]


def test_loso_frees_every_fold_model():
    """A LOSO run must not keep finished folds' graphs, and with them their weights, alive.

    clear_session() alone leaves one traced train_function per fold (TF issue #97697): HTNet was
    killed for lack of memory after 12 folds. The registry entries made before the run stay.
    """
    import gc

    from tensorflow.python.framework import func_graph

    from mer_keras._keras import gradient_registry
    from mer_keras.data.protocols import LOSO
    from mer_keras.train.fit import TrainConfig
    from mer_keras.train.folds import run_folds

    def train_graphs() -> int:
        gc.collect()
        return sum(isinstance(o, func_graph.FuncGraph) and o.name == "train_function" for o in gc.get_objects())

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (6, 28, 28, 3)).astype("float32")
    y = np.array([0, 1, 2] * 2)
    groups = [f"s{i // 3}" for i in range(6)]
    before_graphs, before_keys = train_graphs(), set(gradient_registry())
    out = run_folds(x, y, LOSO().folds(groups), ["a", "b", "c"], TrainConfig(model="ststnet", epochs=1, batch_size=4))
    assert len(out["folds"]) == 2 and np.isfinite(out["probabilities"]).all()  # a leak would leave one per fold
    assert train_graphs() == before_graphs
    assert set(gradient_registry()) == before_keys


def test_a_group_of_folds_stopped_mid_way_resumes_from_its_backup(tiny_flow_run, tmp_path, cache_dir, monkeypatch):
    """The three folds of ``tiny_flow_run``'s options train at once (one group, one backup); the job
    stops after the group's first epoch, before any fold file exists. ``--resume`` continues the
    group from its backup (the second epoch only) and ends with the uninterrupted run's fold files."""
    stop_after_first_epoch(monkeypatch)
    res = runner.invoke(app, [*FLOW, "--parallel-folds", "3", "--out", str(tmp_path), "--cache-dir", str(cache_dir)])
    assert isinstance(res.exception, Stop), res.output
    run = next(tmp_path.glob("*-ststnet-synthetic"))
    assert not list((run / "folds").glob("*.json"))
    assert [p.name for p in (run / "backup").iterdir()] == [p.name for p in (run / "backup").glob("group-3-*")]

    epochs = record_epochs(monkeypatch)
    res = runner.invoke(app, ["train", "--resume", str(run)])
    assert res.exit_code == 0, res.output
    assert epochs[0] == [1]  # the group continued at its second epoch (then the final model)
    for fold in sorted((tiny_flow_run / "folds").glob("*.json")):
        assert json.loads((run / "folds" / fold.name).read_text()) == json.loads(fold.read_text()), fold.name
    assert not (run / "backup").exists() and (run / "results.json").exists()
