"""Read-only outputs and caches (issue 22, file-system faults): every command refuses a folder it
may not write before any work, in one line naming the path, and leaves it as it was.

The tests run as root, where ``chmod`` does not stop a write, so a folder is made unwritable with
``chattr +i`` (the immutable flag, which stops root too); as another user, ``chmod 0555``. Where
neither stops a write (a file system without the flag, or no ``chattr``), the tests skip and say so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.corrupt import CLASSES, _metadata, _tiny_model, encode, face_frames, write_video


def _set_immutable(folder: Path, on: bool) -> None:
    try:
        subprocess.run(["chattr", "+i" if on else "-i", str(folder)], capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        pass


@pytest.fixture
def read_only():
    """``make(folder)``: the folder, created and then made unwritable for this process."""
    made: list[Path] = []

    def make(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        made.append(folder)
        if os.geteuid() == 0:
            _set_immutable(folder, True)
        else:
            folder.chmod(0o555)
        try:
            (folder / ".probe").touch()
        except OSError:
            return folder
        (folder / ".probe").unlink()
        pytest.skip(f"{folder}: this file system lets this user write into any folder (no chattr +i here)")

    yield make
    for folder in made:  # or pytest cannot remove its temporary folders
        _set_immutable(folder, False)
        folder.chmod(0o755)


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    """A finished run's files (a tiny STSTNet-shaped model on 28 px flow, its metadata and config)."""
    from mer_keras._keras import keras
    from mer_keras.preprocess.representation import RepresentationConfig

    run = tmp_path_factory.mktemp("ro_run") / "run"
    run.mkdir()
    rep = RepresentationConfig(representation="flow", size=28)
    _tiny_model(keras).save(run / "model.keras")
    (run / "metadata.json").write_text(json.dumps(_metadata(rep)))
    from dataclasses import asdict

    (run / "config.json").write_text(json.dumps({
        "model": "ststnet", "representation_config": asdict(rep), "dataset": "synthetic", "classes": CLASSES,
        "subjects": 3, "clips": 4, "seed": 7, "epochs": 1}))
    return run


def _cli(*args: str):
    from typer.testing import CliRunner

    from mer_keras.cli.main import app

    return CliRunner().invoke(app, list(args))


def _refused(res, *words: str) -> None:
    """Exit 2, one ``error:`` line holding every word, no traceback."""
    lines = [line for line in res.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert res.exit_code == 2, res.output[-2000:]
    assert len(errors) == 1 and "Traceback" not in res.output, res.output[-2000:]
    assert all(w in " ".join(res.output.split()) for w in words), (words, res.output[-2000:])


def _empty(folder: Path) -> bool:
    return not any(p.name != ".probe" for p in folder.iterdir())


TRAIN = ("train", "--subjects", "3", "--clips", "2", "--epochs", "1", "--no-export")


def test_train_refuses_a_read_only_out_before_any_work(read_only, tmp_path):
    ro = read_only(tmp_path / "ro")
    res = _cli(*TRAIN, "--out", str(ro / "runs"), "--cache-dir", str(tmp_path / "cache"))
    _refused(res, f"--out {ro}/runs", f"{ro} is not writable")
    assert _empty(ro) and not (tmp_path / "cache").exists()  # nothing built


def test_train_refuses_a_cache_that_cannot_be_made_before_any_work(read_only, tmp_path):
    ro = read_only(tmp_path / "ro")
    res = _cli(*TRAIN, "--out", str(tmp_path / "runs"), "--cache-dir", str(ro / "cache"))
    _refused(res, f"--cache-dir {ro}/cache", f"{ro} is not writable")
    assert _empty(ro) and not (tmp_path / "runs").exists()


def test_an_empty_read_only_cache_is_named_when_first_written(read_only, tmp_path):
    """A read-only cache is accepted (a filled one is only read); the first entry it lacks is named."""
    ro = read_only(tmp_path / "ro")
    res = _cli(*TRAIN, "--out", str(tmp_path / "runs"), "--cache-dir", str(ro))
    _refused(res, f"{ro}/synthetic", "this process may not write there")
    assert _empty(ro)


def test_export_refuses_a_read_only_run_folder(read_only, run_folder, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_folder, run)
    before = sorted(p.name for p in run.iterdir())
    read_only(run)
    _refused(_cli("export", str(run)), f"RUN {run}", "is not writable")
    assert sorted(p.name for p in run.iterdir()) == before


def test_predict_and_spot_refuse_a_read_only_out(read_only, run_folder, tmp_path):
    ro = read_only(tmp_path / "ro")
    image = tmp_path / "flow.png"
    image.write_bytes(encode(face_frames(1)[0], ".png"))
    _refused(_cli("predict", str(run_folder), str(image), "--out", str(ro / "p.csv")), f"--out {ro}/p.csv",
             "is not writable")
    _refused(_cli("spot", "--out", str(ro / "spot"), "--cache-dir", str(tmp_path / "cache")), f"--out {ro}/spot",
             "is not writable")
    assert _empty(ro) and not (tmp_path / "cache").exists()


def test_evaluate_and_explain_refuse_a_read_only_out(read_only, run_folder, tmp_path):
    ro = read_only(tmp_path / "ro")
    _refused(_cli("evaluate", str(run_folder), "--out", str(ro / "eval")), f"--out {ro}/eval", "is not writable")
    _refused(_cli("explain", str(run_folder), "--sample", "sub01/clip01", "--out", str(ro / "map.png")),
             f"--out {ro}/map.png",
             "is not writable")
    assert _empty(ro)


def test_edge_run_refuses_a_read_only_annotate_folder(read_only, tmp_path):
    from mer_keras._keras import keras
    from mer_keras.export.tflite import convert

    model = tmp_path / "model.tflite"
    model.write_bytes(convert(_tiny_model(keras), "none"))
    from mer_keras.preprocess.representation import RepresentationConfig

    (tmp_path / "metadata.json").write_text(json.dumps(_metadata(RepresentationConfig(representation="flow",
                                                                                      size=28))))
    video = tmp_path / "clip.mp4"
    write_video(video, face_frames(12))
    ro = read_only(tmp_path / "ro")
    out = subprocess.run([sys.executable, "-m", "edge.run", "--model", str(model), "--video", str(video),
                          "--annotate", str(ro / "out.mp4")], capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parents[2])
    lines = [line for line in (out.stdout + out.stderr).splitlines() if line.strip()]
    assert out.returncode == 2 and len(lines) == 1 and str(ro) in lines[0], out.stdout + out.stderr
    assert _empty(ro)
