"""`mer-keras data prepare` on a CASME II fixture tree: summary, skips, no rework, resume, workers."""

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mer_keras.cli.main import app
from tests.helpers.db_fixtures import make_casme2

runner = CliRunner()


def _tree(tmp_path, tiny_synthetic):
    _, samples = tiny_synthetic
    root = make_casme2(tmp_path / "CASME2", samples)
    # a clip whose frames show no face: skipped at preprocessing, with the clip named
    for f in (root / "CASME2_RAW_selected" / "sub17" / "EP06_01").iterdir():
        import cv2
        cv2.imwrite(str(f), np.full((192, 192, 3), 128, np.uint8))
    # a truncated frame in another clip: skipped, with the file named
    onset = root / "CASME2_RAW_selected" / "sub02" / "EP02_04f" / "img20.jpg"
    onset.write_bytes(onset.read_bytes()[:200])
    return root


class ThreadPool(ThreadPoolExecutor):
    """Stands in for ``ProcessPoolExecutor``: the same pool interface without spawning processes
    (each spawned worker imports TensorFlow, about 10 s)."""

    used = 0

    def __init__(self, max_workers, mp_context=None, initializer=None):
        super().__init__(max_workers=max_workers)  # no initializer: it would set OpenCV's threads for the session
        ThreadPool.used += 1


@pytest.mark.parametrize("pool", ["threads", pytest.param("processes", marks=pytest.mark.slow)])
def test_prepare_summary_skips_rework_and_resume(pool, tmp_path, tiny_synthetic, monkeypatch):
    """With ``--workers 2``. The default run puts the workers in threads (the parallel path of
    ``prepare``: pool, order of results, errors); the real processes are slow."""
    if pool == "threads":
        import concurrent.futures

        monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", ThreadPool)
        ThreadPool.used = 0
    root = _tree(tmp_path, tiny_synthetic)
    cache = tmp_path / "cache"
    args = ["data", "prepare", "casme2", "--root", str(root), "--cache-dir", str(cache), "--workers", "2"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "casme2: 3 clips prepared" in res.output  # 6 good rows - fear (not 5-class) - no face - truncated
    assert "5 clip(s) skipped" in res.output  # 3 bad sheet rows + 1 no face + 1 truncated frame
    assert "no face found in the onset frame of clip casme2/sub17/EP06_01" in res.output
    assert "cannot read frame" in res.output and "EP02_04f/img20.jpg" in res.output
    assert "CASME2-coding-20140508.xlsx:8" in res.output and "unknown emotion 'joy'" in res.output
    folders = sorted((cache / "clips").iterdir())
    assert [f.name.split("-")[0] for f in folders] == ["apex", "dynamic_image", "flow"]
    files = sorted(folders[1].glob("*.npy"))
    assert len(files) == 3
    stamps = {f: f.stat().st_mtime_ns for f in files}
    files[0].unlink()  # as if the run had been killed before this clip was written
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert files[0].exists()  # resumed: the missing clip is rebuilt ...
    assert all(f.stat().st_mtime_ns == stamps[f] for f in files[1:])  # ... and nothing else is redone
    x = np.load(files[1])
    assert x.shape == (112, 112, 3) and x.dtype == np.float32
    if pool == "threads":
        assert ThreadPool.used >= 1  # the clips went through the parallel path


def test_prepare_strict_stops_at_the_first_bad_clip(tmp_path, tiny_synthetic):
    root = _tree(tmp_path, tiny_synthetic)
    res = runner.invoke(app, ["data", "prepare", "casme2", "--root", str(root), "--cache-dir", str(tmp_path / "c"),
                              "--strict"])
    assert res.exit_code == 2
    assert "unknown emotion 'joy'" in res.output and "Traceback" not in res.output


def test_train_skips_a_clip_without_a_face(tmp_path, tiny_synthetic, cache_dir):
    import json

    root = _tree(tmp_path, tiny_synthetic)
    res = runner.invoke(app, ["train", "--data", "casme2", "--root", str(root), "--epochs", "1", "--no-export",
                              "--model", "ststnet", "--flow-method", "dis", "--no-final",  # the test is about the data
                              "--out", str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    run = Path(res.output.strip().splitlines()[-1].strip())
    results = json.loads((run / "results.json").read_text())
    assert results["n_samples"] == 3 and results["skipped"] == 5
    assert "EP06_01" in (run / "skipped.csv").read_text()


def test_prepare_builds_the_inputs_of_named_models(tmp_path, tiny_synthetic):
    root = _tree(tmp_path, tiny_synthetic)
    cache = tmp_path / "cache"
    res = runner.invoke(app, ["data", "prepare", "casme2", "--root", str(root), "--cache-dir", str(cache),
                              "--model", "htnet", "--model", "au_convlstm", "--model", "micro_attention"])
    assert res.exit_code == 0, res.output
    shapes = {f.name.split("-")[0]: np.load(next(f.glob("*.npy"))).shape for f in (cache / "clips").iterdir()}
    assert shapes == {"flow": (28, 28, 3), "sequence": (8, 64, 64, 3), "apex": (224, 224, 1)}
    res = runner.invoke(app, ["data", "prepare", "casme2", "--root", str(root), "--cache-dir", str(cache),
                              "--model", "nope"])
    assert res.exit_code == 2 and "unknown model 'nope'" in res.output
