"""Time to load a saved ``.keras`` model: ``keras.models.load_model`` against ``mer_keras.load_model``.

Keras reads the HDF5 weights through ``zipfile``, which rewinds at every backward seek (CPython
3.11), so its load time grows with the square of the archive size; ``mer_keras.load_model`` copies
the weights out once (see :func:`mer_keras.models.io._load_archive`). Each model is saved
compiled, with its Adam moments (as a run's ``model.keras`` was before commit f06803b), random
weights; both loaders must give the same weights.

    python tools/bench_load.py learnet micro_attention resnet34
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

import mer_keras  # noqa: F401  (selects tf_keras first)
import mer_keras.models  # noqa: F401  (custom layers, for Keras' own loader)
from mer_keras._keras import keras
from mer_keras.factory import create_model, get_spec, list_models
from mer_keras.models.io import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=list_models())
    args = parser.parse_args()
    print("| model | archive | keras.models.load_model | mer_keras.load_model | same weights |\n|---|---|---|---|---|")
    for name in args.models:
        model = create_model(name, 3, input_shape=get_spec(name).input_shape)
        optimizer = keras.optimizers.Adam(1e-3)
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
        optimizer.build(model.trainable_variables)  # Adam moments in the archive
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "model.keras")
            model.save(path)
            size = os.path.getsize(path)
            t0 = time.perf_counter()
            theirs = keras.models.load_model(path, compile=False, safe_mode=True)
            t_keras = time.perf_counter() - t0
            t0 = time.perf_counter()
            ours = load_model(path)
            t_ours = time.perf_counter() - t0
        a, b = theirs.get_weights(), ours.get_weights()
        same = len(a) == len(b) and all(np.array_equal(u, v) for u, v in zip(a, b))
        print(f"| {name} | {size / 1e6:.1f} MB | {t_keras:.1f} s | {t_ours:.1f} s | {'yes' if same else 'NO'} |",
              flush=True)
        del model, theirs, ours
        keras.backend.clear_session()


if __name__ == "__main__":
    main()
