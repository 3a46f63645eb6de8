"""Spotting end to end: `mer-keras spot` (scores, recognition, resume), `predict --spot` and the edge runner."""

import json
from pathlib import Path

import cv2
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.e2e.test_edge import edge_cli

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "saved_models" / "learnet_synthetic_loso"


def read(video):
    return [cv2.cvtColor(cv2.imread(p), cv2.COLOR_BGR2RGB) for p in video.frames]


def test_spot_scores_recognises_writes_and_resumes(long_videos, tmp_path):
    from mer_keras.cli.main import app

    _, _, cache_dir = long_videos  # the same long video as the fixture's: rendered once
    out = tmp_path / "spot"
    args = ["spot", "--videos", "1", "--seconds", "10", "--fps", "30", "--seed", "3", "--draws", "20",
            "--cache-dir", str(cache_dir), "--model", str(MODEL), "--out", str(out)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "random F1" in res.output and "recognition at true intervals" in res.output
    r = json.loads((out / "results.json").read_text())
    assert set(r["scores"]) == {"overall", "micro", "macro"} and r["videos"] == 1 and r["annotated"] >= 3
    assert r["scores"]["overall"]["truth"] == r["annotated"]
    assert r["scores"]["overall"]["spotted"] == r["spotted"]["micro"] + r["spotted"]["macro"]
    assert 0 <= r["random_baseline"]["overall"]["f1_mean"] <= 1 and r["random_baseline"]["draws"] == 20
    rec = r["recognition"]
    assert rec["classes"] == ["negative", "positive", "surprise"] and rec["at_true_intervals"]["clips"] >= 2
    s = r["str"]  # MEGC STR: micro spotting F1 x the recognition UF1 of the true positives
    assert s["spotting_f1"] == r["scores"]["micro"]["f1"]
    assert s["strs"] == round(s["spotting_f1"] * s["recognition_uf1"], 4) and "STRS" in res.output
    table = pd.read_csv(out / "intervals.csv")
    assert len(table) == r["scores"]["overall"]["spotted"]
    micro = table[table.type == "micro"]
    assert micro.predicted.isin(rec["classes"]).all() and (table.onset >= 1).all()
    assert ((micro[["p_negative", "p_positive", "p_surprise"]].sum(axis=1) - 1).abs() < 0.02).all()

    # a second run into the same folder reads the spotted video back instead of spotting it again
    video_file = next((out / "videos").glob("*.json"))
    done = json.loads(video_file.read_text())
    done["seconds"] = 1234.0
    video_file.write_text(json.dumps(done))
    (out / "results.json").unlink()
    assert CliRunner().invoke(app, args).exit_code == 0
    again = json.loads((out / "results.json").read_text())
    assert again["scores"] == r["scores"] and again["spotting_frames_per_second"] == round(r["frames"] / 1234.0, 1)
    res = CliRunner().invoke(app, args + ["--micro-k", "0.2"])
    assert res.exit_code == 2 and "another configuration" in res.output


def test_spot_needs_a_root_for_a_database_and_a_writable_folder(tmp_path):
    from mer_keras.cli.main import app

    res = CliRunner().invoke(app, ["spot", "--data", "samm"])
    assert res.exit_code == 2 and "--data samm needs --root" in res.output
    blocker = tmp_path / "file"
    blocker.write_text("")
    res = CliRunner().invoke(app, ["spot", "--out", str(blocker / "spot")])
    assert res.exit_code == 2 and "not a folder" in res.output


def test_predict_spot_gives_intervals_with_classes(long_videos):
    import mer_keras
    from mer_keras.errors import DataError
    from mer_keras.runtime.spotting import spot_frames

    busy, _, _ = long_videos
    folder = str(Path(busy.frames[0]).parent)
    table = mer_keras.predict(MODEL, [folder], spot=True, fps=30)
    found, _ = spot_frames(read(busy), busy.fps)
    assert list(zip(table.type, table.onset, table.offset)) == [(i.type, i.onset + 1, i.offset + 1) for i in found]
    assert table[table.type == "micro"].predicted.isin(["negative", "positive", "surprise"]).all()
    assert (table[table.type == "macro"].predicted == "").all() and table[table.type == "macro"].p_negative.isna().all()
    with pytest.raises(DataError, match="give --fps"):
        mer_keras.predict(MODEL, [folder], spot=True)
    from mer_keras.runtime.spotting import SpotConfig

    learned = mer_keras.predict(MODEL, [folder], spot=True, fps=30, spot_method="learned")
    found, _ = spot_frames(read(busy), busy.fps, SpotConfig(method="learned"))
    assert list(zip(learned.type, learned.onset, learned.offset)) == [(i.type, i.onset + 1, i.offset + 1) for i in found]


def test_edge_run_reports_only_spotted_events(long_videos, tmp_path):
    """Every line but the summary is a spotted event, the same intervals `mer-keras spot` finds on
    the same frames, each micro-expression with its class; nothing is printed for the still face."""
    from mer_keras.runtime.spotting import spot_frames

    busy, quiet, _ = long_videos
    annotated = tmp_path / "annotated.mp4"
    res = edge_cli("run", "--model", MODEL / "model_int8.tflite", "--video", Path(busy.frames[0]).parent,
                   "--fps", "30", "--annotate", annotated)
    assert res.returncode == 0, res.stderr[-2000:]
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    summary, events = lines[-1], lines[:-1]
    assert summary["event"] == "summary" and summary["mode"] == "spot" and summary["frames"] == 300
    assert summary["micro"] + summary["macro"] == len(events) >= 2
    found, _ = spot_frames(read(busy), busy.fps)
    assert [(e["event"], e["frames"]) for e in events] == [(i.type, [i.onset, i.offset]) for i in found]
    for e in events:
        assert e["frames"][0] <= e["apex"] <= e["frames"][1] and e["time"] == pytest.approx(e["frames"][0] / 30, 1e-3)
        assert ("label" in e) == (e["event"] == "micro")
        if e["event"] == "micro":
            assert e["label"] in ("negative", "positive", "surprise") and abs(sum(e["probabilities"].values()) - 1) < .02
    assert int(cv2.VideoCapture(str(annotated)).get(cv2.CAP_PROP_FRAME_COUNT)) == 300

    quiet_run = edge_cli("run", "--model", MODEL / "model_int8.tflite", "--video", Path(quiet.frames[0]).parent,
                         "--fps", "30")
    assert len(quiet_run.stdout.splitlines()) <= 2   # at most one event on a face that only blinks and moves


def test_edge_run_with_the_learned_second_stage_gives_the_packages_intervals(long_videos, tmp_path):
    from mer_keras.runtime.spotting import SpotConfig, spot_frames

    busy, _, _ = long_videos
    res = edge_cli("run", "--model", MODEL / "model_int8.tflite", "--video", Path(busy.frames[0]).parent,
                   "--fps", "30", "--spot-method", "learned")
    assert res.returncode == 0, res.stderr[-2000:]
    events = [json.loads(line) for line in res.stdout.splitlines()][:-1]
    found, _ = spot_frames(read(busy), busy.fps, SpotConfig(method="learned"))
    assert [(e["event"], e["frames"]) for e in events] == [(i.type, [i.onset, i.offset]) for i in found] != []
    bad = tmp_path / "stage.json"
    bad.write_text("{}")
    for argv, message in (([ "--learned-model", str(bad)], "--learned-model needs --spot-method learned"),
                          (["--spot-method", "learned", "--learned-model", str(bad)], f"{bad}: not a spotting second stage")):
        res = edge_cli("run", "--model", MODEL / "model_int8.tflite", "--video", Path(busy.frames[0]).parent, *argv)
        lines = [line for line in res.stderr.splitlines() if line.strip()]
        assert res.returncode == 2 and len(lines) == 1 and message in lines[0], res.stderr


def test_edge_bench_times_the_whole_spotting_chain(long_videos, capsys):
    from edge.bench import main

    busy, _, _ = long_videos
    threads = cv2.getNumThreads()
    try:
        code = main(["--model", str(MODEL / "model_int8.tflite"), "--video", str(Path(busy.frames[0]).parent),
                     "--fps", "30", "--threads", "1", "--workers", "1"])
    finally:
        cv2.setNumThreads(threads)
    out = capsys.readouterr()
    assert code == 0, out.err[-1500:]
    row = next(line for line in out.out.splitlines() if line.startswith("| 1 | 1 | 30 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3] == "300" and float(cells[5]) > 0 and float(cells[8]) > 0 and cells[9] in ("yes", "no")
