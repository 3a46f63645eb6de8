"""Size and write time of a training backup (model weights + Adam moments), per model.

What ``mer-keras train`` writes at each backup of the fold in progress (Keras
``BackupAndRestore``); it sets how often backing up pays (``--backup-minutes``).

    python tools/bench_backup.py learnet off_apexnet vgg16 htnet
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import mer_keras  # noqa: F401  (selects tf_keras first)
from mer_keras._keras import keras, tf
from mer_keras.factory import create_model, get_spec, list_models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=list_models())
    args = parser.parse_args()
    print("| model | parameters | backup size | write time |\n|---|---|---|---|")
    for name in args.models:
        model = create_model(name, 3, input_shape=get_spec(name).input_shape)
        optimizer = keras.optimizers.Adam(1e-3)
        optimizer.build(model.trainable_variables)
        folder = tempfile.mkdtemp(prefix=f"backup-{name}-")
        try:
            t0 = time.perf_counter()
            tf.train.Checkpoint(model=model, optimizer=optimizer).write(os.path.join(folder, "ckpt"))
            seconds = time.perf_counter() - t0
            size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(folder) for f in files)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        print(f"| {name} | {model.count_params() / 1e6:.1f} M | {size / 1e9:.2f} GB | {seconds:.1f} s |", flush=True)
        del model, optimizer
        keras.backend.clear_session()


if __name__ == "__main__":
    main()
