"""Convert every registered model (random weights, default input) to every export format.

Usage: python tools/check_exports.py [--model NAME ...]

Checks what `mer-keras export` needs from each architecture, independent of training: a
SavedModel, TFLite fp32, fp16, dynamic-range, int8 and QAT-int8 conversions (QAT: fake-quant
inserted, ranges calibrated, no fine-tuning), each with the ops left in float for the
full-integer ones and the QAT layers left to post-training calibration. Calibration uses 8
random inputs in [0, 255]. Prints a Markdown table (sizes, float ops, seconds).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from mer_keras.export.exporter import write_export
from mer_keras.export.formats import FORMATS
from mer_keras.export.quantize import calibrate_ranges, quantize_aware
from mer_keras.export.tflite import convert_checked
from mer_keras.factory import create_model, get_spec, inference_model, list_models


def check(name: str) -> list[dict]:
    """One row per format for model ``name``: {"format", "bytes", "float_ops", "seconds", ...}."""
    rep = get_spec(name).data_config()
    model = inference_model(create_model(name, 3, input_shape=rep.input_shape))
    x = np.random.default_rng(0).uniform(0, 255, (8, *rep.input_shape)).astype(np.float32)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        _, info = write_export(model, FORMATS["saved_model"], d)
        rows.append({"format": "saved_model", "bytes": info["bytes"], "float_ops": None,
                     "seconds": time.perf_counter() - t0})
    for quant in ("none", "fp16", "dynamic", "int8", "qat"):
        t0 = time.perf_counter()
        source, extra = model, {}
        if quant == "qat":
            source, plan = quantize_aware(model)
            calibrate_ranges(source, x)
            extra["calibrated_after_training"] = len(plan.float_in_qat)
        blob, info = convert_checked(source, quant, x)
        rows.append({"format": f"tflite_{'fp32' if quant == 'none' else quant}", "bytes": len(blob),
                     "float_ops": info["float_ops"] if quant in ("int8", "qat") else None,
                     "float_fallback": info["float_fallback"], "seconds": time.perf_counter() - t0, **extra})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", nargs="*", default=None)
    args = ap.parse_args()
    print("| model | format | size (MB) | ops left in float | QAT layers calibrated after training | seconds |")
    print("|---|---|---|---|---|---|")
    for name in args.model or list_models():
        for r in check(name):
            ops = "n/a" if r["float_ops"] is None else (", ".join(r["float_ops"]) or "none")
            print(f"| {name} | {r['format']} | {r['bytes'] / 1e6:.2f} | {ops} | "
                  f"{r.get('calibrated_after_training', '')} | {r['seconds']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
