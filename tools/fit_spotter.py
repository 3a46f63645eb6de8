"""Fit the spotter's learned second stage (:mod:`mer_keras.runtime.spot_stage`) on synthetic
development videos, never on the test videos (seed 0).

    python tools/fit_spotter.py --out stage.json [--sets 100:4:200,...] [--leave-out 101:4:200]
    python tools/fit_spotter.py --write-module     # refit and write LEARNED into spot_stage.py

1. Every candidate of each development video is measured: the spotter runs with its keep rules
   off (``min_snr`` 1e-3, ``blink_ratio`` 1e9, ``min_duration`` 0), and each candidate's features,
   interval and eye ratio are recorded (cached as JSON under ``--candidates``).
2. A candidate is labelled true when it matches a ground-truth interval of its own type with
   IoU >= 0.5.
3. A logistic regression (scikit-learn, balanced class weights, standardised features) is fitted.
   C in {0.1, 1, 10, 100} and the threshold in 0.20..0.90 are chosen by leave-one-video-out F1 of
   the spotter's decisions replayed on the held-out video (blink rule and one report per
   movement as in the stream); then it is fitted on every development video.

``--leave-out SET`` fits without one set of videos, so that the stream can be scored on it with
``mer-keras spot --method learned --learned-model stage.json`` (the check in docs/SPOTTING.md).
"""

from __future__ import annotations

import argparse
import json
import pprint
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: The development sets: seed:videos:fps (20 s videos).
DEV_SETS = "100:4:200,101:4:200,102:4:200,100:4:30,101:4:30,102:4:30,103:4:30"
C_GRID = (0.1, 1.0, 10.0, 100.0)
THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.20, 0.901, 0.05))


def collect(seed: int, videos: int, fps: float, seconds: float, cache_dir, folder: Path) -> list[dict]:
    """Every candidate of the set's videos: [{video, fps, truth, candidates}] (cached in ``folder``)."""
    path = folder / f"candidates_s{seed}_{videos}x{seconds:g}s_{fps:g}fps.json"
    if path.is_file():
        return json.loads(path.read_text())
    from mer_keras.data.pipeline import read_frame
    from mer_keras.data.spotting import load_spotting
    from mer_keras.data.synthetic.long import LongVideoConfig
    from mer_keras.runtime.spotting import SpotConfig, Spotter

    class Measured(Spotter):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.candidates = []

        def _refine(self, on, apex, off, score, k):
            self.last_features = None
            it = super()._refine(on, apex, off, score, k)
            if it is not None and self.last_features is not None:
                self.candidates.append({"onset": it.onset, "apex": it.apex, "offset": it.offset, "type": it.type,
                                        "features": [float(x) for x in self.last_features]})
            return it

    keep_all = SpotConfig(min_snr=1e-3, blink_ratio=1e9, min_duration=0.0)
    out = []
    for v in load_spotting("synthetic", synthetic=LongVideoConfig(videos=videos, seconds=seconds, fps=fps, seed=seed),
                           cache_dir=cache_dir):
        t0 = time.perf_counter()
        spotter = Measured(v.fps, keep_all)
        for frame in v.frames:
            spotter.push(read_frame(frame))
        spotter.finish()
        out.append({"video": f"s{seed}/{v.name}", "fps": v.fps, "candidates": spotter.candidates,
                    "truth": [{"onset": t.onset, "apex": t.apex, "offset": t.offset, "type": t.type}
                              for t in v.truth]})
        print(f"  seed {seed} {fps:g} fps {v.name}: {len(spotter.candidates)} candidates "
              f"({time.perf_counter() - t0:.1f} s)", flush=True)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(out))
    tmp.replace(path)
    return out


def _interval(c: dict, score: float = 1.0):
    from mer_keras.runtime.intervals import Interval

    return Interval(c["onset"], c["apex"], c["offset"], c["type"], float(score))


def labels(video: dict) -> np.ndarray:
    """1 for each candidate matching a true interval of its own type with IoU >= 0.5."""
    from mer_keras.runtime.intervals import IOU_THRESHOLD, iou

    truth = [_interval(t) for t in video["truth"]]
    return np.array([int(any(t.type == c["type"] and iou(_interval(c), t) >= IOU_THRESHOLD for t in truth))
                     for c in video["candidates"]], int)


def decide(video: dict, keep: np.ndarray, score: np.ndarray) -> list:
    """The spotter's decisions replayed: blinks (eye ratio over SpotConfig.blink_ratio) dropped and
    suppressing what overlaps them; the kept candidates taken clearest first, one per movement."""
    from mer_keras.runtime.spot_stage import FEATURES
    from mer_keras.runtime.spotting import SpotConfig

    eye = FEATURES.index("log_eye_ratio")
    blink_log = np.log(SpotConfig().blink_ratio)
    cands = video["candidates"]
    blinks = [c for c in cands if c["features"][eye] > blink_log]
    found = []
    for i in np.argsort(-score, kind="stable"):
        c = cands[i]
        if c["features"][eye] > blink_log or not keep[i]:
            continue
        if any(c["onset"] <= e["offset"] and e["onset"] <= c["offset"] for e in found + blinks):
            continue
        found.append(c)
    return [_interval(c) for c in sorted(found, key=lambda c: c["onset"])]


def replay_f1(videos: list[dict], keeps: list[np.ndarray], scores: list[np.ndarray]) -> float:
    from mer_keras.runtime.intervals import score_videos

    pairs = [(decide(v, k, s), [_interval(t) for t in v["truth"]]) for v, k, s in zip(videos, keeps, scores)]
    return float(score_videos(pairs)["overall"]["f1"])


def _matrix(videos: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    x = np.array([c["features"] for v in videos for c in v["candidates"]], np.float64)
    y = np.concatenate([labels(v) for v in videos]) if videos else np.zeros(0, int)
    return x.reshape(-1, len(x[0]) if len(x) else 1), y


def _fit(videos: list[dict], c_value: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = _matrix(videos)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=c_value, class_weight="balanced", max_iter=2000))
    return model.fit(x, y)


def _proba(model, video: dict) -> np.ndarray:
    if not video["candidates"]:
        return np.zeros(0)
    return model.predict_proba(np.array([c["features"] for c in video["candidates"]]))[:, 1]


def choose(videos: list[dict]) -> dict:
    """C and threshold by leave-one-video-out replayed F1; the analytic rules' replayed F1 beside."""
    from mer_keras.runtime.spot_stage import FEATURES
    from mer_keras.runtime.spotting import SpotConfig

    cfg = SpotConfig()
    snr, dur = FEATURES.index("log_snr"), FEATURES.index("log_duration_s")
    analytic = replay_f1(videos, [np.array([c["features"][snr] >= np.log(cfg.min_snr)
                                            and np.exp(c["features"][dur]) * v["fps"] + 1e-6
                                            >= max(2, cfg.min_duration * v["fps"]) for c in v["candidates"]], bool)
                                  for v in videos],
                         [np.array([c["features"][snr] for c in v["candidates"]]) for v in videos])
    best = None
    for c_value in C_GRID:
        held = [_proba(_fit(videos[:i] + videos[i + 1:], c_value), v) for i, v in enumerate(videos)]
        for t in THRESHOLDS:
            f1 = replay_f1(videos, [p >= t for p in held], held)
            if best is None or f1 > best["lovo_f1"] + 1e-12:
                best = {"C": c_value, "threshold": t, "lovo_f1": round(f1, 4)}
    return {**best, "analytic_replay_f1": round(analytic, 4)}


def stage_of(videos: list[dict], chosen: dict, sets: list[str]) -> dict:
    from mer_keras.runtime.spot_stage import SecondStage

    model = _fit(videos, chosen["C"])
    scaler, lr = model.named_steps["standardscaler"], model.named_steps["logisticregression"]
    x, y = _matrix(videos)
    stage = SecondStage(tuple(float(v) for v in scaler.mean_), tuple(float(v) for v in scaler.scale_),
                        tuple(float(v) for v in lr.coef_[0]), float(lr.intercept_[0]), float(chosen["threshold"]),
                        {"sets": sets, "videos": len(videos), "candidates": int(len(y)), "true": int(y.sum()),
                         "C": chosen["C"], "threshold_chosen_by": "leave-one-video-out replayed F1",
                         "lovo_f1": chosen["lovo_f1"], "analytic_replay_f1": chosen["analytic_replay_f1"]})
    return stage.to_dict()


def write_module(stage: dict) -> Path:
    path = ROOT / "mer_keras/runtime/spot_stage.py"
    text = path.read_text()
    literal = pprint.pformat(stage, sort_dicts=False, width=110)
    new, n = re.subn(r"^LEARNED: dict = \{.*?\}$\n(?=\Z)", lambda _: "LEARNED: dict = " + literal + "\n", text,
                     flags=re.S | re.M)
    if n != 1:
        raise SystemExit(f"{path}: no `LEARNED: dict = ...` block to replace")
    path.write_text(new)
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", default=DEV_SETS, help="development sets, seed:videos:fps, comma-separated")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--leave-out", default=None, help="a set of --sets to leave out of the fit")
    ap.add_argument("--candidates", default="runs/spotter_candidates", help="cache of the measured candidates")
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--out", default=None, help="write the fitted stage to this JSON file")
    ap.add_argument("--write-module", action="store_true", help="write it into mer_keras/runtime/spot_stage.py")
    args = ap.parse_args(argv)
    sets = [s for s in args.sets.split(",") if s and s != args.leave_out]
    if args.leave_out and len(sets) == len(args.sets.split(",")):
        raise SystemExit(f"--leave-out {args.leave_out} is not one of --sets {args.sets}")
    videos = []
    for spec in sets:
        seed, n, fps = spec.split(":")
        videos += collect(int(seed), int(n), float(fps), args.seconds, args.cache_dir, Path(args.candidates))
    chosen = choose(videos)
    stage = stage_of(videos, chosen, sets)
    print(json.dumps(stage["fitted_on"], indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(stage, indent=1))
        print(f"written to {args.out}")
    if args.write_module:
        print(f"written to {write_module(stage)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
