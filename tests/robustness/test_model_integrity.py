"""Model files checked against metadata.json, exports of one run at once, and edge outputs that are
finalised or refused (issue 31: "model files" and "outputs lost").

The one-line refusals of every entry point are cases of the bad-input corpus
(tests/robustness/kinds/model_files.py); here: the checks themselves, the API's warning, one hash
per load, and what a corpus case cannot express: two ``mer-keras export`` processes at once, an
export killed with SIGKILL, Ctrl-C on ``edge.run --annotate``, and an annotated video onto a full
disk (a file-size limit stands in for it).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
CLASSES = ["negative", "positive", "surprise"]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _record(folder: Path, *names: str) -> dict:
    return {n: {"format": "x", "sha256": _sha(folder / n), "bytes": (folder / n).stat().st_size} for n in names}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A finished run of the corpus's tiny 3-class flow model (28 x 28, DIS flow) whose metadata.json
    records the sha256 of model.keras and model_fp32.tflite; its held-out synthetic clips (2 x 2)
    are in the run's cache already, so that an export spends its time converting."""
    from mer_keras._keras import keras
    from mer_keras.export.metadata import build_metadata
    from mer_keras.export.tflite import convert
    from mer_keras.preprocess.representation import RepresentationConfig
    from tests.helpers.corrupt import _tiny_model

    base = tmp_path_factory.mktemp("integrity")
    run, cache = base / "run", base / "cache"
    run.mkdir()
    rep = RepresentationConfig(representation="flow", size=28, flow_method="dis")
    model = _tiny_model(keras)
    model.save(run / "model.keras")
    (run / "model_fp32.tflite").write_bytes(convert(model, "none"))
    meta = build_metadata("tiny", CLASSES, asdict(rep), rep.input_shape, "synthetic", "loso",
                          _record(run, "model.keras", "model_fp32.tflite"),
                          window={"seconds": 0.1, "frames": 10, "fps": 100.0, "stride_frames": 5})
    (run / "metadata.json").write_text(json.dumps(meta))
    config = {"model": "ststnet", "representation_config": asdict(rep), "dataset": "synthetic", "classes": CLASSES,
              "subjects": 2, "clips": 2, "seed": 7, "epochs": 1, "cache_dir": str(cache)}
    (run / "config.json").write_text(json.dumps(config))
    _warm_heldout_cache(run)
    return run


def _warm_heldout_cache(run: Path) -> None:
    """Build the export's held-out inputs once (as ``mer-keras export`` will), into the run's cache."""
    import io

    from rich.console import Console

    from mer_keras.jobs.export import heldout_inputs, recorded_options
    from mer_keras.preprocess.representation import RepresentationConfig

    config = json.loads((run / "config.json").read_text())
    opts = recorded_options(config, run / "config.json")
    heldout_inputs(opts, RepresentationConfig(**config["representation_config"]), CLASSES, Console(file=io.StringIO()))


def _copy(run: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(run, dest)
    return dest


# -- the checks ---------------------------------------------------------------------------------

def test_classes_must_be_unique_non_empty_names():
    from mer_keras.runtime.metadata import MetadataError, check_classes

    assert check_classes(("a", "b"), "m.json") == ["a", "b"]
    for bad, said in (("neg", "the string 'neg'"), (["a", "a", "b"], "names 'a' 2 times"), ([], "an empty list"),
                      (["a", ""], 'entry 2 of 2 is ""'), (["a", 3], "entry 2 of 2 is 3"),
                      ({"a": 1}, "a JSON object")):
        with pytest.raises(MetadataError, match="^m.json: missing or invalid field classes") as err:
            check_classes(bad, "m.json")
        assert said in str(err.value), (bad, str(err.value))


def test_a_file_is_checked_against_the_sha256_metadata_json_records(tmp_path):
    from mer_keras.errors import ModelFileError
    from mer_keras.runtime.metadata import MetadataError, ModelModifiedWarning, verify_model_file

    path = tmp_path / "model.tflite"
    path.write_bytes(b"\x00" * 1000)
    files = _record(tmp_path, "model.tflite")
    assert verify_model_file(path, files, "m.json") is None
    assert verify_model_file(path, {}, "m.json") is None and verify_model_file(path, None, "m.json") is None
    path.write_bytes(b"\x00" * 999 + b"\x01")  # one byte changed
    with pytest.raises(ModelFileError) as err:
        verify_model_file(path, files, "m.json")
    line = str(err.value)
    assert line.startswith(f"{path}: sha256 {_sha(path)[:12]}... (1000 bytes) but m.json records sha256 "
                           f"{files['model.tflite']['sha256'][:12]}... (1000 bytes)") and "\n" not in line
    with pytest.warns(ModelModifiedWarning, match="used anyway"):
        assert "used anyway" in verify_model_file(path, files, "m.json", allow_modified=True)
    said = []
    verify_model_file(path, files, "m.json", allow_modified=True, warn=said.append)
    assert len(said) == 1 and str(path) in said[0]
    with pytest.raises(MetadataError, match="files.model.tflite.sha256 12"):
        verify_model_file(path, {"model.tflite": {"sha256": 12}}, "m.json")


def test_the_api_refuses_a_changed_model_and_allow_modified_warns(tiny_run, tmp_path):
    import mer_keras
    from mer_keras.errors import ModelFileError
    from mer_keras.runtime.metadata import ModelModifiedWarning

    run = _copy(tiny_run, tmp_path / "run")
    reference = mer_keras.load_model(run)
    model = mer_keras.load_model(run)
    kernel, bias = model.get_layer("predictions").get_weights()
    model.get_layer("predictions").set_weights([kernel * 2, bias])
    model.save(run / "model.keras")  # a valid archive, other weights: another run's model
    with pytest.raises(ModelFileError, match="metadata.json records sha256"):
        mer_keras.load_model(run)
    with pytest.warns(ModelModifiedWarning, match=f"{run / 'model.keras'}: sha256"):
        loaded = mer_keras.load_model(run, allow_modified=True)
    assert not np.allclose(loaded.get_layer("predictions").get_weights()[0], reference.get_layer(
        "predictions").get_weights()[0])
    image = ROOT / "tests" / "robustness" / "kinds" / "__init__.py"  # any file: refused before it is read
    with pytest.raises(ModelFileError, match="metadata.json records sha256"):
        mer_keras.predict(run, [image], cache_dir=tmp_path / "cache")


def test_predict_hashes_the_model_once_and_allow_modified_warns(tiny_run, tmp_path, monkeypatch):
    """One hash per load: ``mer_keras.predict`` reads the model's bytes for its sha256 once."""
    import mer_keras
    import mer_keras.runtime.metadata as metadata
    from mer_keras.runtime.metadata import ModelModifiedWarning

    run = _copy(tiny_run, tmp_path / "run")
    calls = []
    real = metadata.sha256_file
    monkeypatch.setattr(metadata, "sha256_file", lambda p: calls.append(Path(p).name) or real(p))
    frame = np.full((96, 96, 3), 128, np.uint8)
    cv2.imwrite(str(tmp_path / "image.png"), frame)
    table = mer_keras.predict(run / "model_fp32.tflite", [tmp_path / "image.png"], cache_dir=tmp_path / "cache")
    assert calls == ["model_fp32.tflite"] and list(table.columns[-3:]) == [f"p_{c}" for c in CLASSES]
    kernel = mer_keras.load_model(run).get_layer("predictions").get_weights()[0]
    data = bytearray((run / "model_fp32.tflite").read_bytes())
    at = bytes(data).find(np.ascontiguousarray(kernel.T).astype("<f4").tobytes())
    data[at] ^= 1  # the lowest bit of one weight: the model still runs, its bytes are not the recorded ones
    (run / "model_fp32.tflite").write_bytes(bytes(data))
    calls.clear()
    with pytest.warns(ModelModifiedWarning, match="model_fp32.tflite: sha256"):
        table = mer_keras.predict(run / "model_fp32.tflite", [tmp_path / "image.png"], cache_dir=tmp_path / "cache",
                                  allow_modified=True)
    assert len(table) == 1 and calls == ["model_fp32.tflite"]


def test_metadata_json_read_by_the_edge_runner_names_duplicate_classes(tmp_path):
    from edge.errors import EdgeInputError
    from edge.model import read_metadata
    from mer_keras.export.metadata import build_metadata
    from mer_keras.preprocess.representation import RepresentationConfig

    rep = RepresentationConfig(representation="flow", size=28)
    meta = build_metadata("tiny", ["a", "b", "a"], asdict(rep), rep.input_shape, "synthetic", "loso", {},
                          window={"seconds": 0.1, "frames": 10, "fps": 100.0, "stride_frames": 5})
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(EdgeInputError, match="names 'a' 2 times"):
        read_metadata(tmp_path / "metadata.json")


# -- exports of one run at once, and what a killed export leaves ---------------------------------

def _mer_keras(*args: str) -> list[str]:
    script = Path(sys.executable).with_name("mer-keras")
    return [str(script), *args] if script.is_file() else [sys.executable, "-m", "mer_keras.cli.main", *args]


def test_two_exports_of_one_run_at_once_both_end_in_metadata_and_report(tiny_run, tmp_path):
    """``mer-keras export --quant fp16`` and ``--quant dynamic`` started together, two processes: each
    merges its file into metadata.json and export_report.json under the run's lock (the last writer
    used to replace the other's entry), each recorded sha256 is the file's, nothing is left behind."""
    run = _copy(tiny_run, tmp_path / "run")
    procs = [subprocess.Popen(_mer_keras("export", str(run), "--format", "tflite", "--quant", q), cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for q in ("fp16", "dynamic")]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    meta = json.loads((run / "metadata.json").read_text())
    report = json.loads((run / "export_report.json").read_text())
    for name in ("model_fp16.tflite", "model_dynamic.tflite"):
        assert meta["files"][name]["sha256"] == _sha(run / name), name
        assert report[name]["verification"]["held_out"], name
    assert meta["files"]["model.keras"]["sha256"] == _sha(run / "model.keras")  # the run's own entries kept
    assert meta["files"]["model_fp32.tflite"]["sha256"] == _sha(run / "model_fp32.tflite")
    assert not list(run.glob(".export-*")) and not (run / ".lock").exists()


#: One process of the merge test: ``rounds`` files installed and recorded in the run, each under its lock.
RECORD_MANY = """
import hashlib, random, sys, time
from pathlib import Path
from mer_keras.jobs.export_files import _install, record_export, run_lock
run, worker, rounds = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(worker)
for i in range(rounds):
    name = f"model_w{worker}_{i}.tflite"
    staged = run / f".staged-{worker}-{i}"
    staged.write_bytes(bytes([worker, i]) * 50)
    time.sleep(rng.uniform(0, 0.01))
    with run_lock(run):
        _install(staged, run / name)
        record_export(run, name, {"format": "x", "sha256": hashlib.sha256((run / name).read_bytes()).hexdigest(),
                                  "bytes": 100, "verification": {"worker": worker}})
"""


@pytest.mark.slow  # each process imports TensorFlow (mer_keras.models.io, the JSON reader, loads it)
def test_records_merged_from_processes_at_once_lose_no_entry(tmp_path):
    """The merge itself, many times over: 3 processes each install and record 12 files in the same
    run at once; every entry of every process ends in metadata.json and export_report.json (the
    default run checks two real exports at once, above)."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "metadata.json").write_text(json.dumps({"classes": CLASSES, "files": {"model.keras": {"format": "keras"}}}))
    procs = [subprocess.Popen([sys.executable, "-c", RECORD_MANY, str(run), str(w), "12"], cwd=ROOT,
                              stderr=subprocess.PIPE, text=True) for w in range(3)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    meta = json.loads((run / "metadata.json").read_text())
    report = json.loads((run / "export_report.json").read_text())
    names = {f"model_w{w}_{i}.tflite" for w in range(3) for i in range(12)}
    assert set(meta["files"]) == names | {"model.keras"} and set(report) == names
    assert all(meta["files"][n]["sha256"] == _sha(run / n) for n in names)
    assert not (run / ".lock").exists() and "verification" not in meta["files"]["model_w0_0.tflite"]


def test_a_killed_exports_staging_folder_is_removed_by_the_next_export(tiny_run, tmp_path):
    """SIGKILL during ``mer-keras export``: its staging folder (``.export-<host>-<pid>-XXXX``) stays;
    the next export of the run removes it, and not the staging folder of a live process."""
    from typer.testing import CliRunner

    from mer_keras.cli.main import app

    run = _copy(tiny_run, tmp_path / "run")
    proc = subprocess.Popen(_mer_keras("export", str(run), "--format", "saved_model"), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    staging = None
    deadline = time.monotonic() + 240
    while staging is None and time.monotonic() < deadline and proc.poll() is None:
        found = [p for p in run.glob(f".export-*-{proc.pid}-*") if any(p.iterdir())]  # writing into it
        staging = found[0] if found else None
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert staging is not None and staging.is_dir(), "the export never wrote into its staging folder"
    live = run / f".export-{socket.gethostname()}-{os.getpid()}-live0001"  # this (live) process's
    live.mkdir()
    res = CliRunner().invoke(app, ["export", str(run), "--format", "tflite", "--quant", "fp16"])
    assert res.exit_code == 0, res.output
    assert not staging.exists() and f"removed what killed exports left in {run}: {staging.name}" in res.output
    assert live.is_dir()
    assert json.loads((run / "metadata.json").read_text())["files"]["model_fp16.tflite"]["sha256"] == _sha(
        run / "model_fp16.tflite")


# -- edge outputs: Ctrl-C and a full disk --------------------------------------------------------

@pytest.fixture(scope="module")
def long_video(tmp_path_factory) -> Path:
    """The first 144 frames of edge/sample.mp4 (a face) played 6 times: 864 frames at 100 fps."""
    cap = cv2.VideoCapture(str(ROOT / "edge" / "sample.mp4"))
    frames = []
    while len(frames) < 144:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    path = tmp_path_factory.mktemp("long") / "long.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 100.0, frames[0].shape[1::-1])
    for frame in frames * 6:
        writer.write(frame)
    writer.release()
    return path


def _edge(*args, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edge.run", *map(str, args)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def _frames_in(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"{path} does not open"
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


@pytest.mark.parametrize("mode", ["windows", pytest.param("spot", marks=pytest.mark.slow)])
def test_ctrl_c_closes_the_annotated_video_and_says_it_stopped_early(tiny_run, long_video, tmp_path, mode):
    """SIGINT while ``edge.run --annotate`` reads a video: exit 130, one stderr line with the frames
    processed of the video's, ``interrupted`` in the summary, and a video that plays, holding every
    frame processed."""
    out = tmp_path / "annotated.mp4"
    proc = _edge("--model", tiny_run / "model_fp32.tflite", "--video", long_video, "--annotate", out, "--mode", mode,
                 "--threads", "1", "--workers", "1")
    partial = out.with_name(f".partial-{out.name}")
    if mode == "windows":
        first = proc.stdout.readline()  # the first window is out: the stream is being read
        assert first.startswith("{"), proc.stderr.read()[-2000:]
    else:  # spot mode prints events only: wait for the annotated frames to reach the disk
        deadline = time.monotonic() + 120
        while not (partial.exists() and partial.stat().st_size > 0) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read()[-2000:]
            time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["event"] == "summary" and summary["interrupted"] is True
    assert summary["frames_total"] == 864 and 0 < summary["frames"] < 864
    assert summary["annotated_frames"] == summary["frames"]
    lines = stderr.strip().splitlines()
    assert lines == [f"interrupted: {summary['frames']} of the 864 frames of {long_video} were processed; {out} "
                     f"holds {summary['frames']} of them (the output above covers them)"], stderr[-2000:]
    assert _frames_in(out) == summary["frames"] and not partial.exists()


def _limit_file_size(limit: int):
    def preexec():
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) like a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


def test_an_annotated_video_that_cannot_be_written_is_an_error_naming_it(tiny_run, tmp_path):
    """OpenCV's writer fails silently when the disk fills up (the file lacks its index: "moov atom not
    found"). The video is read back when closed: exit 2, one line naming it, nothing left there, and
    the analysis itself (the JSON lines, the summary) complete."""
    out = tmp_path / "annotated.mp4"
    proc = _edge("--model", tiny_run / "model_fp32.tflite", "--video", ROOT / "edge" / "sample.mp4", "--annotate",
                 out, "--mode", "windows", "--threads", "1", "--workers", "1", "--max-frames", "144",
                 preexec_fn=_limit_file_size(60_000))
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 2, stderr[-2000:]
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {out}: the annotated video could not be written ("), lines
    assert "nothing was kept there" in lines[0]
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["frames"] == 144 and summary["annotated_frames"] == 0 and summary["annotate_error"] in lines[0]
    assert not out.exists() and not out.with_name(f".partial-{out.name}").exists()
