"""Inference latency at batch 1: Keras vs TFLite fp32 vs TFLite int8 (1 and 2 threads), and sizes.

Usage: python tools/bench_inference.py [--model learnet] [--repeats 200]
The int8 model is calibrated on random inputs here (latency does not depend on the calibration).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import mer_keras  # noqa: F401
from mer_keras.export.tflite import convert
from mer_keras.factory import create_model, get_spec
from mer_keras.runtime.tflite import TFLiteModel


def median_ms(fn, repeats):
    for _ in range(10):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="learnet")
    ap.add_argument("--repeats", type=int, default=200)
    args = ap.parse_args()
    spec = get_spec(args.model)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (1, *spec.input_shape)).astype(np.float32)
    calib = rng.uniform(0, 255, (64, *spec.input_shape)).astype(np.float32)
    model = create_model(args.model, 3)
    print("| runtime | threads | median latency, batch 1 (ms) | model size (MB) |")
    print("|---|---|---|---|")
    print(f"| Keras (model(x), eager call) | TF default | "
          f"{median_ms(lambda: model(x, training=False), args.repeats):.2f} | "
          f"{model.count_params() * 4 / 1e6:.2f} (float32 weights) |")
    for quant, label in (("none", "TFLite fp32"), ("int8", "TFLite int8")):
        blob = convert(model, quant, representative=calib)
        for threads in (1, 2):
            tfl = TFLiteModel(blob, num_threads=threads)
            print(f"| {label} | {threads} | {median_ms(lambda: tfl.predict(x), args.repeats):.2f} | "
                  f"{len(blob) / 1e6:.2f} |")


if __name__ == "__main__":
    main()
