"""The edge runner: parity with the package, a video end to end without TensorFlow, and bad input."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Run the edge runner in a fresh interpreter where TensorFlow and the training code cannot load.
NO_TF = ("import runpy, sys\n"
         "for name in ('tensorflow', 'tf_keras', 'keras', 'tensorflow_model_optimization', 'mer_keras.train'):\n"
         "    sys.modules[name] = None  # any import of these raises ImportError\n"
         "sys.argv = ['edge.{module}'] + sys.argv[1:]\n"
         "runpy.run_module('edge.{module}', run_name='__main__')\n")


def edge_cli(module: str, *args, timeout=300):
    return subprocess.run([sys.executable, "-c", NO_TF.format(module=module), *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def write_video(frames_bgr, path: Path, fps: float = 100.0) -> Path:
    h, w = frames_bgr[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for f in frames_bgr:
        writer.write(f)
    writer.release()
    return path


@pytest.fixture(scope="module")
def clip_video(tiny_synthetic, tmp_path_factory):
    """Two synthetic clips of one pseudo-subject back to back, as an mp4 at 100 fps."""
    _, samples = tiny_synthetic
    clips = [s for s in samples if s.subject == samples[0].subject][:2]
    frames = [cv2.imread(p) for s in clips for p in s.frame_paths]
    return write_video(frames, tmp_path_factory.mktemp("video") / "clips.mp4")


def test_runner_matches_the_package_on_the_same_frames(tiny_flow_run, clip_video, tmp_path):
    """Representation and prediction of every window equal the package's (cache pipeline, Keras)."""
    from edge.capture import open_capture, read_frames
    from edge.model import load
    from edge.pipeline import WindowRunner
    from mer_keras.data.pipeline import sample_representation
    from mer_keras.data.records import Sample
    from mer_keras.models.inference import predict_proba
    from mer_keras.models.io import load_model
    from mer_keras.preprocess.video import extract_frames

    model, info = load(tiny_flow_run / "model_fp32.tflite")
    cap, fps, _ = open_capture(str(clip_video))
    assert fps == 100.0
    windows = list(WindowRunner(model, info, fps, keep_inputs=True).windows(read_frames(cap)))
    cap.release()
    analysed = [w for w in windows if not w.no_face]
    assert len(analysed) >= 3 and len(analysed) == len(windows)
    # the package's own path: the decoded video as a frame folder, a record per window, the cache pipeline
    folder = extract_frames(clip_video, tmp_path)
    paths = tuple(str(p) for p in sorted(folder.glob("frame_*.png")))
    keras_model = load_model(tiny_flow_run / "model.keras")
    worst_input, worst_prob = 0.0, 0.0
    for w in analysed:
        sample = Sample(subject="s", clip_id=f"w{w.start}", frame_paths=paths, onset=w.start, apex=w.apex,
                        offset=w.end, aus=(), emotion="negative", label="negative", database="video", fps=fps)
        x = sample_representation(sample, info.representation)
        worst_input = max(worst_input, float(np.abs(x - w.input).max()))
        p_keras = predict_proba(keras_model, x[None])[0]
        worst_prob = max(worst_prob, float(np.abs(p_keras - w.probabilities).max()))
    assert worst_input == 0.0  # same frames, same code: identical inputs
    assert worst_prob < 1e-4   # TFLite fp32 on the device vs Keras in the package


def _tiny_model_folder(folder: Path, rep) -> Path:
    """A folder with an untrained tiny classifier for ``rep`` (fp32 TFLite + Keras) and its metadata.json."""
    from dataclasses import asdict

    from mer_keras._keras import keras
    from mer_keras.export.metadata import build_metadata
    from mer_keras.export.tflite import convert

    inp = keras.Input(rep.input_shape)
    x = keras.layers.Rescaling(1 / 127.5, -1)(inp)
    pool = keras.layers.GlobalAveragePooling3D() if rep.representation == "sequence" else keras.layers.GlobalAveragePooling2D()
    out = keras.layers.Dense(3, activation="softmax", kernel_initializer=keras.initializers.RandomNormal(0, 2, seed=0))(pool(x))
    model = keras.Model(inp, out)
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / "model.keras")
    (folder / "model_fp32.tflite").write_bytes(convert(model, "none"))
    meta = build_metadata("tiny", ["negative", "positive", "surprise"], asdict(rep), rep.input_shape, "synthetic",
                          "loso", {}, window={"seconds": 0.2, "frames": 20, "fps": 100.0, "stride_frames": 10})
    (folder / "metadata.json").write_text(json.dumps(meta))
    return folder


@pytest.mark.parametrize("rep", [
    dict(representation="dynamic_image", size=32),
    dict(representation="sequence", size=32, frames=4),
    dict(representation="apex", size=48, channels=1),
    dict(representation="flow", size=28, regions="htnet", flow_method="dis"),
    dict(representation="flow", size=28, regions="htnet", flow_method="dis", flow_encoding="minmax"),
], ids=["dynamic_image", "sequence", "apex_gray", "flow_htnet_regions", "flow_htnet_minmax"])
def test_every_representation_matches_the_package(rep, clip_video, tmp_path):
    """Same check as above for the other representations (their frame indexing differs)."""
    from edge.capture import open_capture, read_frames
    from edge.model import load
    from edge.pipeline import WindowRunner
    from mer_keras.data.pipeline import RepresentationConfig, sample_representation
    from mer_keras.data.records import Sample
    from mer_keras.models.inference import predict_proba
    from mer_keras.models.io import load_model
    from mer_keras.preprocess.video import extract_frames

    cfg = RepresentationConfig(**rep)
    folder = _tiny_model_folder(tmp_path / "model", cfg)
    model, info = load(folder / "model_fp32.tflite")
    assert info.representation == cfg
    cap, fps, _ = open_capture(str(clip_video))
    windows = [w for w in WindowRunner(model, info, fps, keep_inputs=True).windows(read_frames(cap)) if not w.no_face]
    cap.release()
    assert len(windows) >= 3
    frames = extract_frames(clip_video, tmp_path)
    paths = tuple(str(p) for p in sorted(frames.glob("frame_*.png")))
    keras_model = load_model(folder / "model.keras")
    for w in windows:
        sample = Sample(subject="s", clip_id=f"w{w.start}", frame_paths=paths, onset=w.start, apex=w.apex,
                        offset=w.end, aus=(), emotion="negative", label="negative", database="video", fps=fps)
        x = sample_representation(sample, cfg)
        assert x.shape == cfg.input_shape
        np.testing.assert_array_equal(x, w.input)
        np.testing.assert_allclose(predict_proba(keras_model, x[None])[0], w.probabilities, atol=1e-4)
        if cfg.flow_encoding == "minmax":  # regions cut from the min-max encoded whole face, as published images are
            from dataclasses import replace

            whole = sample_representation(sample, replace(cfg, regions=None))
            for tile in (x[:14, :14], x[:14, 14:], x[14:, :14], x[14:, 14:]):
                assert any(np.array_equal(whole[r:r + 14, c:c + 14], tile) for r in range(15) for c in range(15))


def test_run_a_video_end_to_end_without_tensorflow(tiny_flow_run, clip_video, tmp_path):
    annotated = tmp_path / "annotated.mp4"
    res = edge_cli("run", "--model", tiny_flow_run / "model_int8.tflite", "--video", clip_video,
                   "--annotate", annotated, "--threads", "1", "--mode", "windows")
    assert res.returncode == 0, res.stderr[-2000:]
    lines = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    summary = lines[-1]
    n_frames = int(cv2.VideoCapture(str(clip_video)).get(cv2.CAP_PROP_FRAME_COUNT))
    assert summary["event"] == "summary" and summary["frames"] == n_frames and summary["no_face"] == 0
    windows = lines[:-1]
    assert len(windows) == summary["windows"] >= 3
    classes = json.loads((tiny_flow_run / "metadata.json").read_text())["classes"]
    for w in windows:
        assert w["label"] in classes and abs(sum(w["probabilities"].values()) - 1) < 0.02
        assert w["frames"][0] <= w["apex"] <= w["frames"][1]
        assert w["frames"][1] - w["frames"][0] + 1 == summary["window_frames"]
    starts = [w["frames"][0] for w in windows]
    assert all(b - a == summary["stride_frames"] for a, b in zip(starts, starts[1:]))
    cap = cv2.VideoCapture(str(annotated))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == n_frames


def test_frames_without_a_face_are_reported_not_fatal(tiny_flow_run, tmp_path):
    blank = [np.full((120, 120, 3), 128, np.uint8) for _ in range(40)]
    video = write_video(blank, tmp_path / "blank.mp4")
    res = edge_cli("run", "--model", tiny_flow_run / "model_int8.tflite", "--video", video, "--mode", "windows")
    assert res.returncode == 0, res.stderr[-2000:]
    lines = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert lines[0]["event"] == "no_face" and "no face" in lines[0]["message"]
    assert lines[-1]["no_face"] == lines[-1]["windows"] >= 1


def test_bad_input_is_one_line_and_exit_2(tiny_flow_run, tiny_run_metadata, clip_video, tmp_path, capsys):
    from edge.run import main

    model = tiny_flow_run / "model_int8.tflite"
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200)
    truncated_model = tmp_path / "model.tflite"
    truncated_model.write_bytes(model.read_bytes()[:1000])
    (tmp_path / "metadata.json").write_text((tiny_flow_run / "metadata.json").read_text())
    cases = [
        (("--model", tmp_path / "none.tflite", "--video", clip_video), "not a loadable TFLite model"),
        (("--model", truncated_model, "--video", clip_video), "not a loadable TFLite model"),
        (("--model", model, "--metadata", tiny_run_metadata, "--video", clip_video), "the model takes (28, 28, 3)"),
        (("--model", model, "--video", tmp_path / "missing.mp4"), "no such video file"),
        (("--model", model, "--video", broken), "cannot"),
        (("--model", model, "--camera", "57"), "camera 57: cannot open"),
        (("--model", model, "--video", clip_video, "--delegate", tmp_path / "libnone.so"), "cannot load the TFLite delegate"),
        (("--model", model, "--metadata", tmp_path / "nope.json", "--video", clip_video), "cannot read metadata"),
    ]
    for args, message in cases:  # in-process (main() as `python -m edge.run` calls it), to keep CI short
        code = main([str(a) for a in args])
        err = capsys.readouterr().err
        assert code == 2, (args, err[-1500:])
        assert message in err and len(err.strip().splitlines()) == 1, (args, err[-1500:])


def test_bench_reports_every_stage(tiny_flow_run, clip_video, capsys):
    """``python -m edge.bench``, called in-process as its ``main`` (without TensorFlow: the run test
    above); it sets OpenCV's threads, restored afterwards for the rest of the session."""
    from edge.bench import main

    threads = cv2.getNumThreads()
    try:
        code = main([str(a) for a in ("--model", tiny_flow_run / "model_int8.tflite", "--video", clip_video,
                                      "--threads", "1", "--workers", "2", "--fps", "100", "200", "--mode", "windows")])
    finally:
        cv2.setNumThreads(threads)
    out = capsys.readouterr()
    assert code == 0, out.err[-2000:]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in out.out.splitlines()
            if line.startswith("| 1 |")]
    assert [(r[1], r[2]) for r in rows] == [("2", "100"), ("2", "200")]  # workers 1 vs 2: the parallel test below
    for cells in rows:
        assert all(float(c) >= 0 for c in cells[4:9]) and cells[9] in ("yes", "no")
    # at 200 fps the same window spans twice the frames
    w100, w200 = (int(r[3].split("/")[0]) for r in rows)
    assert abs(w200 - 2 * w100) <= 1


def test_parallel_windows_equal_one_worker(tiny_flow_run, clip_video, tmp_path, monkeypatch):
    """Windows prepared 2 at a time, in worker threads, come out in stream order with the same apex,
    input and output; `edge.run --workers 1` and `--workers 2` write the same JSON lines."""
    import threading

    from edge.capture import open_capture, read_frames
    from edge.errors import EdgeInputError
    from edge.model import load
    from edge.options import parse_args
    from edge.pipeline import WindowRunner
    from edge.run import run

    model, info = load(tiny_flow_run / "model_int8.tflite", num_threads=1)
    cap, fps, _ = open_capture(str(clip_video))
    frames = list(read_frames(cap))
    cap.release()
    # a faceless stretch in the middle: no_face windows must keep their place in the order too
    blank = [np.full_like(frames[0], 128)] * 25
    frames = frames[:40] + blank + frames[40:]
    serial = list(WindowRunner(model, info, fps, keep_inputs=True).windows(frames))
    assert any(w.no_face for w in serial) and sum(not w.no_face for w in serial) >= 3
    threads_used = set()
    prepare = WindowRunner.prepare

    def recording_prepare(self, clip, start):
        threads_used.add(threading.current_thread().name)
        return prepare(self, clip, start)

    monkeypatch.setattr(WindowRunner, "prepare", recording_prepare)
    for workers in (2,):  # two windows at once already interleave; each more is one more pass of all checks
        threads_used.clear()
        with WindowRunner(model, info, fps, keep_inputs=True, workers=workers) as runner:
            parallel = list(runner.windows(frames))
            assert [(w.start, w.end, w.apex, w.no_face) for w in parallel] == \
                [(w.start, w.end, w.apex, w.no_face) for w in serial]
            for a, b in zip(serial, parallel):
                if not a.no_face:
                    np.testing.assert_array_equal(a.input, b.input)
                    np.testing.assert_array_equal(a.probabilities, b.probabilities)
            assert len(threads_used) > 1 and all(name.startswith("window") for name in threads_used)
            # a consumer that stops early gets the first windows and leaves the runner usable
            first = runner.windows(frames)
            assert next(first).start == 0
            first.close()
            assert len(list(runner.windows(frames))) == len(serial)
    # a window that fails in a worker fails the stream at that window, in order
    def failing_prepare(self, clip, start):
        if start == serial[2].start:
            raise ValueError(f"bad window {start}")
        return prepare(self, clip, start)

    monkeypatch.setattr(WindowRunner, "prepare", failing_prepare)
    with WindowRunner(model, info, fps, workers=2) as runner:
        seen = []
        with pytest.raises(ValueError, match=f"bad window {serial[2].start}"):
            for w in runner.windows(frames):
                seen.append(w.start)
        assert seen == [w.start for w in serial[:2]]
    monkeypatch.setattr(WindowRunner, "prepare", prepare)
    with pytest.raises(EdgeInputError, match="workers 0"):
        WindowRunner(model, info, fps, workers=0)
    with pytest.raises(EdgeInputError, match="workers 1.5"):
        WindowRunner(model, info, fps, workers=1.5)
    # the CLI: same JSON lines whatever the number of workers
    outputs = {}
    for workers in ("1", "2"):
        out = tmp_path / f"out{workers}.jsonl"
        with out.open("w") as f:
            summary = run(parse_args(["--model", str(tiny_flow_run / "model_int8.tflite"), "--video", str(clip_video),
                                      "--workers", workers, "--mode", "windows"]), f)
        assert summary["workers"] == int(workers)
        outputs[workers] = [json.loads(line) for line in out.read_text().splitlines()[:-1]]
    assert len(outputs["1"]) >= 3 and outputs["1"] == outputs["2"]


def test_edge_requirements_match_the_edge_extra():
    """edge/requirements.txt and pyproject.toml's [edge] extra pin the same packages with the same markers."""
    import tomllib

    from packaging.requirements import Requirement

    lines = [line.split("#")[0].strip() for line in (ROOT / "edge" / "requirements.txt").read_text().splitlines()]
    from_file = sorted(str(Requirement(line)) for line in lines if line)
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["edge"]
    assert from_file == sorted(str(Requirement(r)) for r in extra)
    assert any("aarch64" in r for r in from_file)


def test_run_a_frame_folder_and_a_glob_pattern(tiny_flow_run, tiny_synthetic, tmp_path):
    """CASME II-style frame folders (img9 before img10): the same frames as the video, read in order."""
    _, samples = tiny_synthetic
    clips = [s for s in samples if s.subject == samples[0].subject][:2]
    folder = tmp_path / "frames"
    folder.mkdir()
    paths = [p for s in clips for p in s.frame_paths]
    for i, p in enumerate(paths, start=1):
        cv2.imwrite(str(folder / f"img{i}.jpg"), cv2.imread(p))
    for source in (folder, f"{folder}/img*.jpg"):
        res = edge_cli("run", "--model", tiny_flow_run / "model_int8.tflite", "--video", source, "--fps", "100",
                       "--threads", "1", "--mode", "windows")
        assert res.returncode == 0, res.stderr[-2000:]
        lines = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
        assert lines[-1]["frames"] == len(paths) and lines[-1]["windows"] >= 3 and lines[-1]["no_face"] == 0
        assert lines[-1]["fps_source"] == 100.0 and "decode_error" not in lines[-1]


def test_a_stream_damaged_in_the_middle_is_reported_with_exit_3(tiny_flow_run, tiny_synthetic, tmp_path, capsys):
    from edge.run import main

    _, samples = tiny_synthetic
    frames = [cv2.imread(p) for s in samples[:4] for p in s.frame_paths]
    h, w = frames[0].shape[:2]
    video = tmp_path / "clips.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 100, (w, h))
    for f in frames:
        writer.write(f)
    writer.release()
    damaged = tmp_path / "damaged.avi"
    damaged.write_bytes(video.read_bytes()[:int(video.stat().st_size * 0.5)])  # the container still states them all
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(frames, start=1):
        cv2.imwrite(str(folder / f"img{i}.jpg"), f)
    (folder / "img20.jpg").write_bytes(b"not a jpeg")
    model = tiny_flow_run / "model_int8.tflite"
    for (source, message), mode in zip(((damaged, "decoding stopped at frame"),
                                        (folder, "img20.jpg: not a readable image")), ("windows", "spot")):
        code = main(["--model", str(model), "--video", str(source), "--fps", "100", "--threads", "1", "--mode", mode])
        out = capsys.readouterr()
        assert code == 3, out.err[-1500:]
        summary = json.loads(out.out.strip().splitlines()[-1])
        assert message in summary["decode_error"] and message in out.err
        assert 0 < summary["frames"] < len(frames)
    assert f"of the {len(frames)} the file states" in json.loads(
        edge_cli("run", "--model", model, "--video", damaged, "--fps", "100", "--mode", "windows").stdout.strip()
        .splitlines()[-1]
    )["decode_error"]


def test_bench_refuses_an_input_shorter_than_one_window(tiny_flow_run, tiny_synthetic, tmp_path, capsys):
    from edge.bench import main

    _, samples = tiny_synthetic
    short = write_video([cv2.imread(p) for p in samples[0].frame_paths[:6]], tmp_path / "short.mp4")
    threads = cv2.getNumThreads()
    try:
        code = main(["--model", str(tiny_flow_run / "model_int8.tflite"), "--video", str(short), "--threads", "1",
                     "--workers", "1", "--fps", "200", "--mode", "windows"])
    finally:
        cv2.setNumThreads(threads)
    err = capsys.readouterr().err
    assert code == 2 and "6 frames, fewer than one window" in err and "--loops" in err


def test_bench_says_nothing_spotted_instead_of_none():
    from edge.bench import recognition_ms

    assert recognition_ms({"micro": 0, "ms_per_event": {"recognition": None}}) == "nothing spotted"
    assert recognition_ms({"micro": 2, "ms_per_event": {"recognition": None}}) == "none recognised"
    assert recognition_ms({"micro": 2, "ms_per_event": {"recognition": 3.5}}) == "3.5"
