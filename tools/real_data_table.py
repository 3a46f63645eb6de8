"""Rows of the real-data table (docs/MODELS.md, docs/REAL_DATA.md) from finished run folders.

Each ``--row LABEL=RUN[,RUN...]`` is one line: pooled UF1 and UAR (mean and sample standard
deviation over the runs when there are several, e.g. seeds) and per-database UF1 (means), read
from each run's results.json. Nothing is recomputed: the figures are the runs' own.

    python tools/real_data_table.py --row "ststnet, seeds 0-2=runs/a,runs/b,runs/c" --row "ensemble=runs/e"
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def figures(run: Path) -> dict:
    """{"uf1", "uar", "casme2", "samm", "smic"} of one run's results.json (per-database UF1)."""
    res = json.loads((run / "results.json").read_text())
    out = {"uf1": res["overall"]["uf1"], "uar": res["overall"]["uar"]}
    for db, m in res.get("per_database", {}).items():
        out[db] = m["uf1"]
    return out


def cell(values: list[float]) -> str:
    """``0.734`` for one value, ``0.734 ± 0.007`` (sample sd) for several."""
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--row", action="append", required=True, help="LABEL=RUN[,RUN...]")
    args = ap.parse_args(argv)
    print("| recipe | runs | UF1 | UAR | CASME II UF1 | SAMM UF1 | SMIC UF1 |")
    print("|---|---|---|---|---|---|---|")
    for row in args.row:
        label, _, runs = row.partition("=")
        figs = [figures(Path(r)) for r in runs.split(",")]
        dbs = [cell([f[db] for f in figs]) if all(db in f for f in figs) else "-" for db in ("casme2", "samm", "smic")]
        print(f"| {label} | {len(figs)} | {cell([f['uf1'] for f in figs])} | {cell([f['uar'] for f in figs])} | "
              + " | ".join(dbs) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
