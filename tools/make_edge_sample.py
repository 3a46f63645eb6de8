"""Write edge/sample.mp4: an 8 s synthetic face video holding three micro-expressions (one per
class) and a macro-expression among neutral stretches and blinks, as a camera would film them.

Usage: python tools/make_edge_sample.py [--out edge/sample.mp4] [--first-seed 1]

The video comes from the embedded long-video generator (:mod:`mer_keras.data.synthetic.long`: real
face photos shipped by scikit-image and matplotlib, a pseudo-subject the default training set does
not hold, 100 fps, 192 x 192 px), with its defaults but for: 8 s, exactly 3 micro- and 1
macro-expression, and no head movements or illumination steps (blinks, jitter, drift, flicker and
noise stay). The seed is the first from ``--first-seed`` whose three micro-expressions are one of
each class (negative, positive, surprise); nothing about the recogniser or the spotter chooses it.
The ground truth (onset, apex, offset, type, emotion per event, in frames of the video) is printed
and written to sample.json beside it.

An 8 s video gives the spotter what it needs: neutral stretches around each event (its threshold is
relative to the video's own motion) and 1 s of context at both ends (its macro scale compares frames
1 s apart). The previous sample (three clips back to back, 1.44 s) gave it neither: nothing was spotted.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import pandas as pd

from mer_keras.data.synthetic import CLASSES
from mer_keras.data.synthetic.long import LongVideoConfig, long_videos


def write_video(frame_paths, out: Path, fps: float) -> None:
    """Encode image files (read with OpenCV) as an MPEG-4 (mp4v) video."""
    first = cv2.imread(str(frame_paths[0]))
    h, w = first.shape[:2]
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"cannot write {out}")
    for p in frame_paths:
        writer.write(cv2.imread(str(p)))
    writer.release()


def sample_config(seed: int) -> LongVideoConfig:
    """The sample's long-video parameters (see the module docstring)."""
    return LongVideoConfig(videos=1, seconds=8.0, fps=100.0, seed=seed, micro=(3, 3), macro=(1, 1), head_moves=0.0,
                           light_changes=0.0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "edge" / "sample.mp4"))
    ap.add_argument("--first-seed", type=int, default=1)
    args = ap.parse_args()
    seed = args.first_seed
    while True:
        cfg = sample_config(seed)
        root = long_videos(cfg)
        events = pd.read_csv(root / "spotting.csv")
        micro = events[events["Type"] == "micro"]
        if sorted(micro["Emotion"]) == sorted(CLASSES):
            break
        seed += 1
    frames = sorted((root / "v01").glob("img*.jpg"), key=lambda p: int(p.stem[3:]))
    out = Path(args.out)
    write_video(frames, out, cfg.fps)
    coding = [{"type": r["Type"], "emotion": r["Emotion"], "action_units": str(r["Action Units"]),
               "onset": int(r["Onset"]) - 1, "apex": int(r["Apex"]) - 1, "offset": int(r["Offset"]) - 1}
              for r in events.sort_values("Onset").to_dict("records")]  # 0-based frame indices of the video
    blinks = pd.read_csv(root / "distractors.csv")
    meta = {"fps": cfg.fps, "frames": len(frames), "seed": seed, "events": coding,
            "blinks": [{"start": int(r["Start"]) - 1, "end": int(r["End"]) - 1}
                       for r in blinks[blinks["Kind"] == "blink"].to_dict("records")],
            "made_by": "tools/make_edge_sample.py"}
    out.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
    print(json.dumps(meta, indent=1))
    print(f"{out}: {out.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
