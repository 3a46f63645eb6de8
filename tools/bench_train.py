"""Training throughput (samples per second) of registered models on random inputs.

Runs the project's own trainer (:func:`mer_keras.train.fit.fit_model`, so multi-output
models train with their auxiliary losses) for two epochs and times the second.

Usage: python tools/bench_train.py [--model learnet [--model vgg16 ...]] [--batch-size 32] [--steps 20]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import mer_keras  # noqa: F401
from mer_keras._keras import keras
from mer_keras.factory import get_spec, list_models
from mer_keras.train.fit import TrainConfig, fit_model
from mer_keras.train.memory import releasing_fit_memory


class EpochTimer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds = time.perf_counter() - self.t0


def samples_per_second(name: str, batch_size: int = 32, steps: int = 20, input_shape=None) -> float:
    """Training samples per second of model ``name`` in the project's trainer: random inputs, two
    epochs of ``steps`` batches, the second timed (the first builds and traces the graph)."""
    spec = get_spec(name)
    shape = tuple(input_shape or spec.input_shape)
    n = batch_size * steps
    x = np.random.default_rng(0).uniform(0, 255, (n, *shape)).astype(np.float32)
    y = np.arange(n) % 3
    timer = EpochTimer()
    with releasing_fit_memory():  # one model after another: free each before the next
        fit_model(x, y, 3, TrainConfig(model=name, epochs=2, batch_size=batch_size), callbacks=[timer])
    return n / timer.seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", action="append", help="registered model (repeatable; default: all)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    print("| model | input | batch | samples/s |\n|---|---|---|---|")
    for name in args.model or list_models():
        rate = samples_per_second(name, args.batch_size, args.steps)
        print(f"| {name} | {get_spec(name).input_shape} | {args.batch_size} | {rate:.0f} |", flush=True)


if __name__ == "__main__":
    main()
