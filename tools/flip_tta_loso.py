"""Flip test-time augmentation measured on a LOSO run's own fold models (paired comparison).

Rebuilds a finished `mer-keras train` run's data and options from its folder, retrains its folds
(its seed: the same fold models, within float rounding) and scores each fold's test clips twice:
as they are, and as the mean of the clip's and its mirror's probabilities (u negated for flow, as
the training flips; :func:`mer_keras.train.folds.run_folds` with ``test_flip``). Nothing is
chosen: both figures are printed and written.

    python tools/flip_tta_loso.py RUN [RUN ...] --out report.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="finished train run folders (one protocol config each)")
    parser.add_argument("--out", required=True, help="report.json to write")
    args = parser.parse_args()

    from rich.console import Console

    from mer_keras.data.protocols import PROTOCOLS
    from mer_keras.jobs.resolve import resolve_options, train_config
    from mer_keras.jobs.run_inputs import load_run_inputs
    from mer_keras.train.folds import run_folds

    def figures(protocol, data, y, p):  # the protocol's own report: overall and per database
        report = PROTOCOLS[protocol].report(y, p, data.classes, [r["database"] for r in data.rows])
        return {"overall": report["overall"], **report.get("per_database", {})}

    console = Console(stderr=True)
    report = {}
    for run in args.runs:
        opts, rep, data, inputs, _ = load_run_inputs(run, console)
        opts, rep = resolve_options(opts)
        groups = PROTOCOLS[opts.protocol].groups(data.rows, data.test_databases)
        folds = PROTOCOLS[opts.protocol].folds(groups)
        t0 = time.monotonic()
        res = run_folds(inputs.x, inputs.y, folds, data.classes, train_config(opts, rep), test_flip=True)
        report[run] = {"plain": figures(opts.protocol, data, inputs.y, res["probabilities"]),
                       "test_flip": figures(opts.protocol, data, inputs.y, res["probabilities_test_flip"]),
                       "seconds": round(time.monotonic() - t0, 1)}
        console.print(f"{run}: UF1 {report[run]['plain']['overall']['uf1']:.3f} plain, "
                      f"{report[run]['test_flip']['overall']['uf1']:.3f} with flip TTA")
    Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
