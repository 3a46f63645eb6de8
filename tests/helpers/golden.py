"""Before/after proof of the job-layer redesign: run ``mer-keras train`` and reduce its run folder
to what must not change (files, config, results, predictions, fold files, metadata, parity).

``python -m tests.helpers.golden capture OUT_DIR`` writes ``synthetic_default.json`` and
``manifest.json``; the files in ``tests/golden/`` were captured with the code before the redesign
(commit 068fbd1) and ``tests/e2e/test_golden.py`` compares today's runs with them. The runs go
through the command line in a fresh process, the same way on any version of the code.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

#: Options of the two reference runs (small enough for the default test run).
SYNTHETIC_ARGS = ["--subjects", "3", "--clips", "4", "--seed", "7", "--epochs", "2"]
MANIFEST_ARGS = ["--model", "ststnet", "--data", "manifest", "--seed", "3", "--epochs", "3", "--batch-size", "8"]

#: Keys that name paths or times of one machine, not results.
_VOLATILE = {"out", "cache_dir", "resume", "root", "seconds", "sha256", "mer_keras_version", "bytes"}


def make_manifest(folder: Path, cache_dir: Path) -> Path:
    """A manifest mixing frame-folder rows (synthetic clips) and precomputed-image rows (seeded PNGs).

    Returns the CSV path. Deterministic: the same folder content on every call.
    """
    import numpy as np
    from PIL import Image

    from mer_keras.data.synthetic import SyntheticConfig, synthetic_dataset

    _, samples = synthetic_dataset(SyntheticConfig(subjects=3, clips_per_subject=3, seed=11), cache_dir=cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for s in samples:
        first = Path(s.frame_paths[0]).parent
        rows.append({"subject": f"m{s.subject}", "label": s.label, "frames": str(first), "path": "",
                     "onset": str(s.frame_numbers[s.onset]) if s.frame_numbers else str(s.onset + 1),
                     "apex": str(s.frame_numbers[s.apex]) if s.frame_numbers else str(s.apex + 1),
                     "offset": str(s.frame_numbers[s.offset]) if s.frame_numbers else str(s.offset + 1),
                     "dataset": "framesdb"})
    rng = np.random.default_rng(5)
    labels = ("negative", "positive", "surprise")
    for i in range(12):
        img = rng.integers(0, 256, size=(28, 28, 3), dtype=np.uint8)
        img[..., i % 3] = np.clip(img[..., i % 3].astype(int) + 60, 0, 255)  # a class signal
        name = folder / f"img_{i:02d}.png"
        Image.fromarray(img).save(name)
        rows.append({"subject": f"p{i // 4}", "label": labels[i % 3], "frames": "", "path": name.name,
                     "onset": "", "apex": "", "offset": "", "dataset": "imagesdb"})
    csv_path = folder / "manifest.csv"
    with open(csv_path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return csv_path


def train(args: list[str], out: Path, cache_dir: Path, pythonpath: str | None = None) -> Path:
    """Run ``mer-keras train ARGS`` in a fresh process and return the run folder (last output line)."""
    env = {**os.environ, "MER_CACHE_DIR": str(cache_dir), "COLUMNS": "200"}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    cmd = [sys.executable, "-m", "mer_keras.cli.main", "train", *args, "--out", str(out), "--cache-dir", str(cache_dir)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return Path(res.stdout.strip().splitlines()[-1].strip())


def _clean(node):
    if isinstance(node, dict):
        return {k: _clean(v) for k, v in node.items() if k not in _VOLATILE}
    if isinstance(node, list):
        return [_clean(v) for v in node]
    return node


def summarise(run: Path) -> dict:
    """What must stay identical in a run folder (paths, times, file hashes and sizes left out)."""
    run = Path(run)
    files = sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file())
    out = {"files": files}
    for name in ("config.json", "results.json", "metadata.json", "export_report.json"):
        if (run / name).is_file():
            out[name] = _clean(json.loads((run / name).read_text()))
    out["folds"] = {p.name: json.loads(p.read_text()) for p in sorted((run / "folds").glob("*.json"))}
    with open(run / "predictions.csv") as fh:
        out["predictions"] = list(csv.DictReader(fh))
    return out


def compare(expected, actual, path: str = "", tol: float = 1e-5, loose: dict[str, float] | None = None) -> list[str]:
    """Differences between two summaries: floats within ``tol`` (absolute) count as equal, or within
    ``loose[part]`` where the path contains ``part``."""
    diffs = []
    if isinstance(expected, dict) and isinstance(actual, dict):
        for k in sorted(set(expected) | set(actual)):
            if k not in actual or k not in expected:
                diffs.append(f"{path}/{k}: {'missing' if k not in actual else 'new'}")
            else:
                diffs += compare(expected[k], actual[k], f"{path}/{k}", tol, loose)
    elif isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            diffs.append(f"{path}: length {len(expected)} != {len(actual)}")
        else:
            for i, (a, b) in enumerate(zip(expected, actual)):
                diffs += compare(a, b, f"{path}[{i}]", tol, loose)
    else:
        a, b = expected, actual
        tol = next((t for part, t in (loose or {}).items() if part in path), tol)
        try:  # predictions.csv cells are strings of numbers
            fa, fb = float(a), float(b)
            if isinstance(a, (int, float, str)) and isinstance(b, (int, float, str)) and not isinstance(a, bool):
                if (math.isnan(fa) and math.isnan(fb)) or abs(fa - fb) <= tol:
                    return diffs
        except (TypeError, ValueError):
            pass
        if a != b:
            diffs.append(f"{path}: {a!r} != {b!r}")
    return diffs


def capture(dest: Path, work: Path, pythonpath: str | None = None) -> dict[str, dict]:
    """Run both reference runs and write their summaries into ``dest``."""
    cache = work / "cache"
    manifest = make_manifest(work / "manifest", cache)
    runs = {"synthetic_default": train(SYNTHETIC_ARGS, work / "runs", cache, pythonpath),
            "manifest": train(MANIFEST_ARGS + ["--root", str(manifest)], work / "runs", cache, pythonpath)}
    dest.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, run in runs.items():
        out[name] = summarise(run)
        (dest / f"{name}.json").write_text(json.dumps(out[name], indent=1, sort_keys=True) + "\n")
    return out


if __name__ == "__main__":
    import tempfile

    if len(sys.argv) < 3 or sys.argv[1] != "capture":
        sys.exit("usage: python -m tests.helpers.golden capture OUT_DIR [PYTHONPATH_OF_THE_CODE]")
    with tempfile.TemporaryDirectory() as tmp:
        capture(Path(sys.argv[2]), Path(tmp), sys.argv[3] if len(sys.argv) > 3 else None)
