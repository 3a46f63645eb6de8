"""Write edge/sample.mp4: three synthetic micro-expression clips (one per class) back to back.

Usage: python tools/make_edge_sample.py [--out edge/sample.mp4] [--seed 1]

The clips come from the embedded synthetic generator (mer_keras.data.synthetic; real face photos
shipped by scikit-image and matplotlib, rendered at 100 fps, 192 x 192 px), from a seed the
default training run never uses. The coding (onset, apex, offset, emotion) of each clip, in frames
of the sample video, is printed and written to sample.json beside it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2

from mer_keras.data.synthetic import CLASSES, SyntheticConfig, synthetic_dataset


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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "edge" / "sample.mp4"))
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    _, samples = synthetic_dataset(SyntheticConfig(subjects=3, clips_per_subject=6, seed=args.seed))
    # one pseudo-subject showing every class, so the only cuts in the video are between clips
    subject = next(sub for sub in sorted({s.subject for s in samples})
                   if {s.label for s in samples if s.subject == sub} >= set(CLASSES))
    picked = [next(s for s in samples if s.subject == subject and s.label == label) for label in CLASSES]
    paths, coding = [], []
    for s in picked:
        base = len(paths)
        coding.append({"subject": s.subject, "clip": s.clip_id, "emotion": s.label, "onset": base + s.onset,
                       "apex": base + s.apex, "offset": base + s.offset})
        paths.extend(s.frame_paths)
    out = Path(args.out)
    write_video(paths, out, samples[0].fps)
    meta = {"fps": samples[0].fps, "frames": len(paths), "clips": coding, "made_by": "tools/make_edge_sample.py"}
    out.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
    print(json.dumps(meta, indent=1))
    print(f"{out}: {out.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
