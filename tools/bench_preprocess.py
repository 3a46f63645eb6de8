"""Preprocessing throughput: face landmarks + alignment, optical flow, dynamic image.

Usage: python tools/bench_preprocess.py [--repeats 50]
Prints a Markdown table (frames per second, median over repeats) for docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

import mer_keras  # noqa: F401
from mer_keras.data.synthetic import bundled_face_photos
from mer_keras.preprocess.dynamic_image import dynamic_image
from mer_keras.preprocess.face import align_clip, get_landmarker
from mer_keras.preprocess.flow import FLOW_METHODS, optical_flow


def timeit(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=50)
    args = ap.parse_args()
    _, photo = bundled_face_photos()[0]
    import cv2

    frame = cv2.resize(photo, (192, 192))
    lm = get_landmarker()
    clip = np.stack([frame] * 30)
    rows = []
    t = timeit(lambda: lm(frame), args.repeats)
    rows.append(("face mesh landmarks (192x192 frame)", "1 frame", t, 1 / t))
    landmarks = lm(frame)
    t = timeit(lambda: align_clip(clip, landmarks=landmarks, size=128), args.repeats)
    rows.append(("alignment warp to 128x128 (given landmarks)", "30 frames", t, 30 / t))
    aligned = align_clip(clip, landmarks=landmarks, size=128)
    shifted = np.roll(aligned[0], 1, axis=1)
    for method in FLOW_METHODS:
        t = timeit(lambda: optical_flow(aligned[0], shifted, method), args.repeats)
        rows.append((f"optical flow {method} (128x128 pair)", "1 pair", t, 1 / t))
    t = timeit(lambda: dynamic_image(aligned), args.repeats)
    rows.append(("dynamic image (30 frames of 128x128x3)", "30 frames", t, 30 / t))
    print(f"machine: {platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores\n")
    print("| stage | unit | median time per unit (ms) | frames (or pairs) per second |")
    print("|---|---|---|---|")
    for name, unit, t, fps in rows:
        print(f"| {name} | {unit} | {t * 1e3:.2f} | {fps:.0f} |")


if __name__ == "__main__":
    main()
