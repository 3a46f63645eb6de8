"""Training throughput (samples per second) of a registered model on random inputs.

Usage: python tools/bench_train.py [--model learnet] [--batch-size 32] [--steps 60]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import mer_keras  # noqa: F401
from mer_keras._keras import keras
from mer_keras.registry import create_model, get_spec


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="learnet")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=60)
    args = ap.parse_args()
    spec = get_spec(args.model)
    n = args.batch_size * args.steps
    x = np.random.default_rng(0).uniform(0, 255, (n, *spec.input_shape)).astype(np.float32)
    y = np.arange(n) % 3
    model = create_model(args.model, 3)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    model.fit(x[: args.batch_size * 5], y[: args.batch_size * 5], batch_size=args.batch_size, epochs=1, verbose=0)
    t0 = time.perf_counter()
    model.fit(x, y, batch_size=args.batch_size, epochs=1, verbose=0)
    dt = time.perf_counter() - t0
    print(f"| {args.model} | {spec.input_shape} | {args.batch_size} | {n / dt:.0f} |")


if __name__ == "__main__":
    main()
