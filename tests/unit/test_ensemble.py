"""``mer-keras ensemble``: clip-by-clip mean of finished runs, refused across different data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mer_keras.errors import OptionError, RunFolderError
from mer_keras.jobs.ensemble import EnsembleOptions, average_model, ensemble
from mer_keras.runs import RunFolder

CLASSES = ["negative", "positive", "surprise"]


def fake_run(path, probs_by_subject, seed=0, classes=CLASSES, root="/d"):
    """A finished run folder (config, folds, results) without training: labels cycle over the classes."""
    run = RunFolder(path)
    path.mkdir(parents=True)
    run.write_config({"model": "ststnet", "dataset": "megc2019-flow", "data": "megc2019-flow", "root": root,
                      "protocol": "loso", "classes": classes, "seed": seed, "loso_subjects": sorted(probs_by_subject),
                      "representation_config": {"representation": "flow", "size": 28, "crop": 128, "flow_method": "tvl1"}})
    for subject, p in probs_by_subject.items():
        keys = [f"casme2/{subject}/c{i}" for i in range(len(p))]
        run.write_fold(subject, classes, keys, [classes[i % 3] for i in range(len(p))], np.asarray(p), {})
    (path / "results.json").write_text(json.dumps({"model": "ststnet", "overall": {"uf1": 0.5, "uar": 0.5}}))
    return path


def test_members_are_averaged_clip_by_clip(tmp_path):
    rng = np.random.default_rng(0)
    a = {s: rng.dirichlet(np.ones(3), size=4) for s in ("s1", "s2", "s3")}
    b = {s: rng.dirichlet(np.ones(3), size=4) for s in ("s1", "s2", "s3")}
    out = ensemble(EnsembleOptions(runs=[str(fake_run(tmp_path / "a", a)), str(fake_run(tmp_path / "b", b, seed=1))],
                                   out=str(tmp_path / "out"), export=False))
    folds = RunFolder(out).read_folds()
    for s in a:
        np.testing.assert_allclose(folds[s]["probabilities"], (a[s] + b[s]) / 2, rtol=1e-6)
    results = json.loads((out / "results.json").read_text())
    assert results["n_samples"] == 12 and [m["seed"] for m in results["ensemble_of"]] == [0, 1]
    mean = np.concatenate([(a[s] + b[s]) / 2 for s in sorted(a)])
    truth = np.array([i % 3 for _ in range(3) for i in range(4)])
    assert results["overall"]["accuracy"] == pytest.approx(float((mean.argmax(1) == truth).mean()))


def test_runs_on_other_data_or_other_clips_are_refused(tmp_path):
    p = {"s1": np.full((3, 3), 1 / 3)}
    a = fake_run(tmp_path / "a", p)
    with pytest.raises(OptionError, match="classes"):
        ensemble(EnsembleOptions(runs=[str(a), str(fake_run(tmp_path / "b", p, classes=["x", "y", "z"]))]))
    with pytest.raises(OptionError, match="given twice"):
        ensemble(EnsembleOptions(runs=[str(a), str(a)]))
    c = fake_run(tmp_path / "c", p)
    fold = json.loads(RunFolder(c).fold_file("s1").read_text())
    fold["test_keys"][0] = "casme2/s1/other"
    RunFolder(c).fold_file("s1").write_text(json.dumps(fold))
    with pytest.raises(RunFolderError, match="test clips differ"):
        ensemble(EnsembleOptions(runs=[str(a), str(c)], out=str(tmp_path / "out")))


def test_one_data_folder_written_relative_or_absolute_is_the_same_root(tmp_path, monkeypatch):
    """Runs started from different folders record the same data root differently, and newer versions
    record a representation field that older ones left out (its default); other roots are refused."""
    data = tmp_path / "shared" / "data"
    data.mkdir(parents=True)
    (tmp_path / "main").mkdir()
    monkeypatch.chdir(tmp_path / "main")
    p = {"s1": np.full((3, 3), 1 / 3)}
    a = fake_run(tmp_path / "a", p, root="../shared/data")
    b = fake_run(tmp_path / "b", p, seed=1, root=str(data))
    config = RunFolder(b).read_config()
    config["representation_config"]["flow_encoding"] = "fixed"  # recorded by a newer version: its default spelled out
    RunFolder(b).write_config(config)
    assert ensemble(EnsembleOptions(runs=[str(a), str(b)], out=str(tmp_path / "out"), export=False)).is_dir()
    (tmp_path / "other").mkdir()
    c = fake_run(tmp_path / "c", p, seed=2, root=str(tmp_path / "other"))
    with pytest.raises(OptionError, match="root"):
        ensemble(EnsembleOptions(runs=[str(a), str(c)], out=str(tmp_path / "out"), export=False))


def test_the_average_model_outputs_the_mean_of_its_members():
    from mer_keras._keras import keras
    from mer_keras.factory import create_model

    keras.utils.set_random_seed(0)
    members = [create_model("ststnet", 3, input_shape=(28, 28, 3)) for _ in range(2)]
    x = np.random.default_rng(1).uniform(0, 255, (5, 28, 28, 3)).astype(np.float32)
    want = (members[0].predict(x, verbose=0) + members[1].predict(x, verbose=0)) / 2
    model = average_model(members, "avg")
    np.testing.assert_allclose(model.predict(x, verbose=0), want, atol=1e-6)
    assert model.output_names == ["predictions"]
