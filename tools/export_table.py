"""Markdown tables of export verification (docs/EDGE.md) from runs exported with `mer-keras export`.

Usage: python tools/export_table.py RUNS_DIR [--model NAME ...]

For every run folder under RUNS_DIR with an export_report.json written by `mer-keras export`
(entries carrying "verification"), one row per format: file size, max |p - p_keras| and argmax
agreement on the held-out inputs, UF1 of Keras and of the export, the drop in points, the export
time and the ops left in float. A second table summarises int8 and QAT-int8 against the
2-point budget.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mer_keras.export.formats import FORMATS


def size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs")
    ap.add_argument("--model", nargs="*", default=None)
    args = ap.parse_args()
    rows, budget = [], []
    for report_path in sorted(Path(args.runs).glob("*/export_report.json")):
        run = report_path.parent
        meta = json.loads((run / "metadata.json").read_text())
        model = meta["model"]
        if args.model and model not in args.model:
            continue
        report = json.loads(report_path.read_text())
        order = list(FORMATS)
        for name, info in sorted(report.items(), key=lambda kv: order.index(kv[1]["format"])
                                 if kv[1].get("format") in order else len(order)):
            v = info.get("verification")
            if not v:
                continue
            # only full-integer exports are checked for float ops; the others compute in float by design
            float_ops = (", ".join(info.get("float_ops") or []) or "none") if info["format"] in (
                "tflite_int8", "tflite_qat") else "n/a"
            rows.append(f"| {model} | {info['format']} | {size(info['bytes'])} | {v['max_abs_diff']:.1e} | "
                        f"{v['argmax_agreement']:.3f} | {v['uf1_reference']:.3f} | {v['uf1_candidate']:.3f} | "
                        f"{v['uf1_drop_points']:+.1f} | {info['seconds']:.1f} | "
                        f"{float_ops} |")
        int8 = {info["format"]: info["verification"] for info in report.values() if info.get("verification")}
        if "tflite_int8" in int8 and "tflite_qat" in int8:
            best = min(int8["tflite_int8"]["uf1_drop_points"], int8["tflite_qat"]["uf1_drop_points"])
            qat = next(i for i in report.values() if i.get("format") == "tflite_qat").get("qat", {})
            budget.append(f"| {model} | {int8['tflite_int8']['uf1_drop_points']:+.1f} | "
                          f"{int8['tflite_qat']['uf1_drop_points']:+.1f} | {'yes' if best <= 2.0 else 'no'} | "
                          f"{len(qat.get('calibrated_after_training', {}))} |")
        n = next((i["verification"]["n"] for i in report.values() if i.get("verification")), 0)
        rows.append(f"| | *{n} held-out clips* | | | | | | | | |" if n else "")
    print("| model | format | size | max abs diff | argmax agreement | UF1 Keras | UF1 export | drop (points) | "
          "export s | ops left in float |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(r for r in rows if r))
    print()
    print("| model | int8 UF1 drop (points) | QAT-int8 UF1 drop (points) | within 2 points | "
          "layers calibrated after QAT |")
    print("|---|---|---|---|---|")
    print("\n".join(budget))


if __name__ == "__main__":
    main()
