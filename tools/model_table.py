"""The docs/MODELS.md summary table from real run folders.

For each registered model: parameters (3 classes), FLOPs of one forward pass (TensorFlow
profiler on the frozen graph at batch 1; a multiply-add counts as 2), and, from the newest run
folder of that model under RUNS (``mer-keras train --model NAME --out RUNS``): pooled LOSO
accuracy / UF1 / UAR, the job's wall-clock time from its log when given, the int8 TFLite size and
its median batch-1 latency on this machine (ai-edge-litert, 1 thread).

Usage: python tools/model_table.py RUNS [--logs LOGDIR] [--model NAME ...]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import mer_keras  # noqa: F401
from mer_keras._keras import tf
from mer_keras.factory import create_model, get_spec, inference_model, list_models
from mer_keras.runtime.tflite import TFLiteModel


def attention_flops(model) -> int:
    """FLOPs of the MultiHeadAttention layers (the profiler has no statistics for Einsum, their op).

    Per layer, query (B, N, T, C) attending over its own T tokens in each of N blocks, h heads of
    size d: q, k, v projections 3 N T C h d, scores and weighted sum 2 N h T^2 d, output N T h d C
    multiply-adds; x 2 for FLOPs.
    """
    from mer_keras._keras import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.MultiHeadAttention):
            shape = [int(v) for v in layer._query_shape[1:]]
            c, t = shape[-1], shape[-2]
            n = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
            hd = layer._num_heads * layer._key_dim
            total += 2 * (3 * n * t * c * hd + 2 * n * t * t * hd + n * t * hd * c)
    return total


def count_flops(model) -> int:
    """FLOPs of one batch-1 forward pass: the profiler's float_ops on the frozen inference graph,
    plus :func:`attention_flops` (Einsum is not counted by the profiler)."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2_as_graph

    fn = tf.function(lambda x: model(x, training=False))
    concrete = fn.get_concrete_function(tf.TensorSpec((1, *model.input_shape[1:]), tf.float32))
    _, graph_def = convert_variables_to_constants_v2_as_graph(concrete)
    with tf.Graph().as_default() as graph:
        tf.graph_util.import_graph_def(graph_def, name="")
        opts = tf.compat.v1.profiler.ProfileOptionBuilder(
            tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()).with_empty_output().build()
        profiled = tf.compat.v1.profiler.profile(graph=graph, run_meta=tf.compat.v1.RunMetadata(), cmd="op",
                                                 options=opts).total_float_ops
    return int(profiled) + attention_flops(model)


def latency_ms(path: Path, repeats: int = 100) -> float:
    """Median batch-1 latency of a TFLite model, 1 thread, after 10 warm-up runs."""
    tfl = TFLiteModel(path, num_threads=1)
    x = np.random.default_rng(0).uniform(0, 255, (1, *tfl.input_shape)).astype(np.float32)
    for _ in range(10):
        tfl.predict(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        tfl.predict(x)
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def human(n: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.2f} {unit}"
    return f"{n:.0f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", type=Path)
    ap.add_argument("--logs", type=Path, help="folder with done.txt lines '<model> rc=0 seconds=N'")
    ap.add_argument("--model", action="append")
    args = ap.parse_args()
    seconds = {}
    if args.logs and (args.logs / "done.txt").exists():
        for line in (args.logs / "done.txt").read_text().splitlines():
            name, _, secs = line.split()
            seconds[name] = int(secs.split("=")[1])
    print("| model | input | parameters | FLOPs | accuracy | UF1 | UAR | job time | int8 size | int8 latency |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.model or list_models():
        spec = get_spec(name)
        model = inference_model(create_model(name, 3))
        row = [f"`{name}`", "x".join(map(str, spec.input_shape)), f"{model.count_params():,}",
               human(count_flops(model))]
        runs = [r for r in sorted(args.runs.glob(f"*-{name}-synthetic")) if (r / "metadata.json").exists()]  # finished
        if runs:
            run = runs[-1]
            overall = json.loads((run / "results.json").read_text())["overall"]
            row += [f"{overall[k]:.3f}" for k in ("accuracy", "uf1", "uar")]
            s = seconds.get(name)
            row.append(f"{s // 60} min {s % 60:02d} s" if s else "")
            int8 = run / "model_int8.tflite"
            size = int8.stat().st_size if int8.exists() else 0
            shown = f"{size / 1e6:.2f} MB" if size >= 1e6 else f"{size / 1e3:.1f} kB"
            row += [shown, f"{latency_ms(int8):.2f} ms"] if size else ["", ""]
        else:
            row += ["not run"] * 3 + ["", "", ""]
        print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
