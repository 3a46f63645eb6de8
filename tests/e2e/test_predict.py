"""Using a trained model on clips (issue 20). ``mer-keras predict`` and ``mer_keras.predict``: a
run trained on a CASME II fixture tree classifies a frame folder, a video, an onset/apex pair, a
ready image and the whole database, with the preprocessing of training. ``mer-keras evaluate
--data``: that run and a released composite model scored on the database, labels mapped only by
an explicit ``--class-map``."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import mer_keras
from mer_keras.cli.main import app
from mer_keras.data import casme2
from mer_keras.errors import DataError, ModelFileError, OptionError
from tests.helpers.db_fixtures import make_casme2

runner = CliRunner()


@pytest.fixture(scope="module")
def casme2_run(tmp_path_factory, tiny_synthetic, cache_dir):
    """(run folder, CASME II fixture root): STSTNet's final model fitted on the fixture (no folds)."""
    root = make_casme2(tmp_path_factory.mktemp("db") / "CASME2", tiny_synthetic[1])
    out = tmp_path_factory.mktemp("runs")
    res = runner.invoke(app, ["train", "--data", "casme2", "--root", str(root), "--model", "ststnet", "--flow-method",
                              "dis", "--epochs", "1", "--folds", "none", "--no-export", "--out", str(out),
                              "--cache-dir", str(cache_dir)])
    assert res.exit_code == 0, res.output
    return Path(res.output.strip().splitlines()[-1].strip()), root


def _video(frames_dir: Path, path: Path) -> Path:
    files = sorted(frames_dir.iterdir(), key=lambda p: int(p.stem[3:]))
    first = cv2.imread(str(files[0]))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, first.shape[1::-1])
    for f in files:
        writer.write(cv2.imread(str(f)))
    writer.release()
    return path


def test_predict_a_frame_folder_a_video_a_pair_and_an_image_in_input_order(casme2_run, cache_dir, tmp_path):
    run, root = casme2_run
    clip = root / "CASME2_RAW_selected" / "sub01" / "EP02_01f"  # img46..img51
    video = _video(clip, tmp_path / "clip.avi")
    flow_png = tmp_path / "flow.png"
    cv2.imwrite(str(flow_png), np.random.default_rng(0).integers(0, 255, (28, 28, 3), dtype=np.uint8))
    out = tmp_path / "pred.csv"
    res = runner.invoke(app, ["predict", str(run), str(flow_png), str(clip), "--onset", "46", "--apex", "48",
                              "--out", str(out), "--cache-dir", str(cache_dir)])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out)
    assert list(table["input"]) == [str(flow_png), str(clip)]
    classes = list(casme2.CLASSES)
    assert list(table.columns) == ["input", "onset", "apex", "offset", "predicted", *[f"p_{c}" for c in classes]]
    assert table.loc[1, ["onset", "apex", "offset"]].tolist() == [46, 48, 51]  # the folder's own frame numbers
    assert table.loc[0, ["onset", "apex", "offset"]].isna().all()  # a ready image: fed as it is
    assert table["predicted"].isin(classes).all()
    np.testing.assert_allclose(table[[f"p_{c}" for c in classes]].sum(1), 1.0, atol=1e-5)
    p = [f"p_{c}" for c in classes]
    # the Python function gives the same table
    api = mer_keras.predict(run, [flow_png, clip], onset=46, apex=48, cache_dir=str(cache_dir))
    np.testing.assert_allclose(api[p].to_numpy(), table[p].to_numpy(), atol=1e-6)
    # the video of the folder's frames, numbered from 1: onset 1, apex 3 are img46 and img48
    vid = mer_keras.predict(run, [video], onset=1, apex=3, cache_dir=str(cache_dir))
    assert vid.loc[0, ["onset", "apex", "offset"]].tolist() == [1, 3, 6]
    np.testing.assert_allclose(vid[p].to_numpy()[0], table[p].to_numpy()[1], atol=0.2)  # MJPG re-encodes the frames
    # an onset / apex pair of images is one clip: the folder's onset and apex, the same input
    pair = mer_keras.predict(run, [clip / "img46.jpg", clip / "img48.jpg"], pairs=True, cache_dir=str(cache_dir))
    assert len(pair) == 1 and pair.loc[0, "input"] == f"{clip / 'img46.jpg'},{clip / 'img48.jpg'}"
    np.testing.assert_allclose(pair[p].to_numpy()[0], table[p].to_numpy()[1], atol=1e-5)


def test_predict_every_clip_of_a_database_with_its_labels(casme2_run, cache_dir, tmp_path):
    run, root = casme2_run
    out = tmp_path / "pred.json"
    res = runner.invoke(app, ["predict", str(run), "--data", "casme2", "--root", str(root), "--out", str(out),
                              "--cache-dir", str(cache_dir)])
    assert res.exit_code == 0, res.output
    written = json.loads(out.read_text())
    assert written["classes"] == list(casme2.CLASSES) and len(written["predictions"]) == 5  # the 5 usable clips
    assert {p["label"] for p in written["predictions"]} <= set(casme2.CLASSES)
    assert "fitted on casme2" in res.output  # its own training clips: not a test


def test_predict_refuses_bad_model_inputs_and_outputs_before_any_work(casme2_run, tmp_path):
    run, root = casme2_run
    clip = root / "CASME2_RAW_selected" / "sub01" / "EP02_01f"
    with pytest.raises(OptionError, match="expected a .csv or .json file"):
        mer_keras.predict(run, [clip], out=str(tmp_path / "pred.txt"))
    with pytest.raises(OptionError, match="one of the two"):
        mer_keras.predict(run, [])
    with pytest.raises(ModelFileError, match="no model.keras"):
        mer_keras.predict(tmp_path, [clip])
    with pytest.raises(DataError, match="has no apex image after it"):
        mer_keras.predict(run, [clip / "img46.jpg"], pairs=True)
    with pytest.raises(DataError, match="apex frame 99 has no file"):
        mer_keras.predict(run, [clip], apex=99)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="notes.txt: not a video"):
        mer_keras.predict(run, [tmp_path / "notes.txt"])
    # one path is one input, not its characters; anything else is refused in one line (issue 31)
    with pytest.raises(DataError, match="notes.txt: not a video"):
        mer_keras.predict(run, str(tmp_path / "notes.txt"))
    for bad, name in ((None, "NoneType"), (5, "int"), ([clip, None], "list holding \\['NoneType', 'PosixPath'\\]")):
        with pytest.raises(OptionError, match=f"^inputs: expected a path or a list of paths .*got {name}"):
            mer_keras.predict(run, bad)
    single = mer_keras.predict(run, clip)
    assert len(single) == 1 and single["input"][0] == str(clip)


def test_evaluate_scores_a_database_run_on_a_database_with_per_class_figures(casme2_run, cache_dir, tmp_path):
    run, root = casme2_run
    res = runner.invoke(app, ["evaluate", str(run), "--data", "casme2", "--root", str(root), "--out",
                              str(tmp_path / "ev"), "--cache-dir", str(cache_dir)])
    assert res.exit_code == 0, res.output
    results = json.loads((tmp_path / "ev" / "results.json").read_text())
    m = results["models"]["model.keras"]
    assert results["n_samples"] == 5 and results["left_out"] == {} and results["dataset"] == "casme2"
    assert set(m["per_class"]) == set(casme2.CLASSES) and np.array(m["confusion_matrix"]).sum() == 5
    assert (tmp_path / "ev" / "confusion_matrix.png").is_file()


def test_evaluate_maps_labels_only_when_told(cache_dir, tmp_path, tiny_synthetic):
    """A released composite model (negative / positive / surprise) on a CASME II tree (five classes)."""
    released = Path(__file__).resolve().parents[2] / "saved_models" / "ststnet_megc2019_composite"
    root = make_casme2(tmp_path / "CASME2", tiny_synthetic[1])
    base = ["evaluate", str(released), "--data", "casme2", "--root", str(root), "--cache-dir", str(cache_dir)]
    res = runner.invoke(app, [*base, "--out", str(tmp_path / "a")])
    assert res.exit_code == 2 and "labels disgust (1), happiness (1), others (1), repression (1) are not classes " \
        "of the model" in res.output and "--class-map" in res.output
    res = runner.invoke(app, [*base, "--class-map", "happiness=positive", "--out", str(tmp_path / "b")])
    assert res.exit_code == 2 and "labels disgust (1), others (1), repression (1) are" in res.output
    res = runner.invoke(app, [*base, "--class-map", "happiness=joy", "--out", str(tmp_path / "c")])
    assert res.exit_code == 2 and "targets ['joy'] are not classes" in res.output
    res = runner.invoke(app, [*base, "--class-map", "composite", "--out", str(tmp_path / "d")])
    assert res.exit_code == 0, res.output
    results = json.loads((tmp_path / "d" / "results.json").read_text())
    assert results["left_out"] == {"others": 1} and results["n_samples"] == 4 and results["class_map"] == "composite"
    assert set(results["models"]) == {"model.keras", "model_fp32.tflite", "model_int8.tflite"}
    assert "left out 1 clip(s) labelled others" in res.output
