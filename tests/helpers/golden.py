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

from mer_keras.jobs.protocol_run import LATER_OPTIONS

#: Options of the two reference runs (small enough for the default test run).
SYNTHETIC_ARGS = ["--subjects", "3", "--clips", "4", "--seed", "7", "--epochs", "2"]
MANIFEST_ARGS = ["--model", "ststnet", "--data", "manifest", "--seed", "3", "--epochs", "3", "--batch-size", "8"]

#: Keys that name paths or times of one machine, not results.
_VOLATILE = {"out", "cache_dir", "resume", "root", "seconds", "sha256", "mer_keras_version", "bytes",
             "environment", "machine_kind", "warnings", "cwd"}  # warnings name temporary paths: checked by the test

#: Values that training computes, compared within a tolerance: probabilities (fold files and the
#: ``p_<class>`` columns of predictions.csv), final training losses, and how far the TFLite models
#: are from Keras.
TRAINED = ("/probabilities", "/p_", "/final_train_loss", "/parity/max_abs_diff", "/parity/mean_abs_diff")
#: Values decided by an argmax over trained floats: predicted classes and every figure counted
#: from them. On another machine kind a near-tie may fall the other way, so they are compared there
#: only where the reference decided by a clear margin (:func:`compare_runs`).
DECISIONS = ("]/prediction", "/results.json/overall/", "/results.json/per_class/", "/results.json/per_database/",
             "/results.json/confusion_matrix", "/results.json/folds", "/row/accuracy", "/row/uf1", "/row/uar",
             "/final_train_accuracy", "/parity/argmax_agreement", "/parity/uf1_", "/parity/within_tolerance")
#: Tolerances on the machine kind and packages of the capture. The int8 model's parity is a
#: measured quantization error: a last-bit change upstream (the thread count) moves it by up to one
#: output step of 1/256.
SAME_MACHINE = {"tol": 1e-5, "loose": {"model_int8.tflite/parity/": 1 / 256}}
#: Tolerances on another machine kind or other package versions. The data path gives the same bits
#: on every x86-64 CPU (mer_keras/preprocess/portable.py); training does not: over these runs' 2-3
#: epochs the probabilities of an AMD EPYC with AVX-512 and of the same runs under qemu-x86_64
#: emulating an EPYC-Milan (AVX2), with oneDNN capped to AVX2, with oneDNN off, or on one thread,
#: differed by at most 1.6e-5 (tools/check_cpu_kinds.py); 1e-3 leaves a margin of 60. Two training
#: clips more or fewer right move final_train_accuracy by at most 2/17.
CROSS_MACHINE = {"tol": 1e-3, "loose": {"model_int8.tflite/parity/": 3 / 256, "/final_train_accuracy": 2 / 17 + 1e-6}}


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
    out["folds"] = {p.name: _clean(json.loads(p.read_text())) for p in sorted((run / "folds").glob("*.json"))}
    with open(run / "predictions.csv") as fh:
        out["predictions"] = list(csv.DictReader(fh))
    return out


def compare(expected, actual, path: str = "", tol: float = 1e-5, loose: dict[str, float] | None = None,
            skip=()) -> list[str]:
    """Differences between two summaries: floats within ``tol`` (absolute) count as equal, or within
    ``loose[part]`` where the path contains ``part``; paths containing a part of ``skip`` are not
    compared."""
    diffs = []
    if any(part in path for part in skip):
        return diffs
    if isinstance(expected, dict) and isinstance(actual, dict):
        for k in sorted(set(expected) | set(actual)):
            if any(part in f"{path}/{k}" for part in skip):
                continue
            if k not in expected and path == "/config.json" and k in LATER_OPTIONS \
                    and actual[k] in (None, LATER_OPTIONS[k]):
                continue  # an option added after the reference run, at the value that changes nothing
            if k not in actual or k not in expected:
                diffs.append(f"{path}/{k}: {'missing' if k not in actual else 'new'}")
            else:
                diffs += compare(expected[k], actual[k], f"{path}/{k}", tol, loose, skip)
    elif isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            diffs.append(f"{path}: length {len(expected)} != {len(actual)}")
        else:
            for i, (a, b) in enumerate(zip(expected, actual)):
                diffs += compare(a, b, f"{path}[{i}]", tol, loose, skip)
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


def this_machine() -> dict:
    """The machine kind and the numeric packages' versions (:mod:`mer_keras.environment`), as a
    golden file records the machine it was captured on."""
    from mer_keras.environment import environment_record, numeric_packages

    record = environment_record(with_tensorflow=False)
    return {"machine_kind": record["machine_kind"], "packages": numeric_packages(record)}


def margins(summary: dict) -> dict[str, float]:
    """Per prediction row (``subject/clip``), the reference's decision margin: its largest class
    probability minus the second largest."""
    out = {}
    for row in summary["predictions"]:
        p = sorted((float(v) for k, v in row.items() if k.startswith("p_")), reverse=True)
        out[f"{row['subject']}/{row['clip']}"] = p[0] - p[1]
    return out


def consistency(summary: dict) -> list[str]:
    """What holds in a run folder on every machine: each predicted class is the argmax of its row's
    probabilities, the fold files hold the rows of predictions.csv, and every figure of results.json
    and of the fold files is what :func:`mer_keras.metrics.compute_metrics` counts from them."""
    from mer_keras.metrics import compute_metrics

    problems = []
    results, rows = summary["results.json"], summary["predictions"]
    classes = results["classes"]
    for row in rows:
        p = [float(row[f"p_{c}"]) for c in classes]
        if row["prediction"] != classes[max(range(len(p)), key=p.__getitem__)]:
            problems.append(f"predictions.csv {row['subject']}/{row['clip']}: {row['prediction']} is not the argmax")
    fold_probs = {k: p for f in summary["folds"].values() for k, p in zip(f["test_keys"], f["probabilities"])}
    for row in rows:
        p = fold_probs.get(f"{row['database']}/{row['subject']}/{row['clip']}")
        if p is None or any(abs(float(row[f"p_{c}"]) - v) > 1e-6 for c, v in zip(classes, p)):
            problems.append(f"predictions.csv {row['subject']}/{row['clip']}: not the fold file's probabilities")

    def figures(y_true, y_pred):
        return compute_metrics([classes.index(c) for c in y_true], [classes.index(c) for c in y_pred], classes)

    m = figures([r["label"] for r in rows], [r["prediction"] for r in rows])
    for key in ("accuracy", "uf1", "uar"):
        if abs(m[key] - results["overall"][key]) > 1e-9:
            problems.append(f"results.json overall {key} {results['overall'][key]} != {m[key]} counted from predictions")
    if m["confusion_matrix"] != results["confusion_matrix"]:
        problems.append("results.json confusion_matrix is not the one counted from predictions.csv")
    for name, fold in summary["folds"].items():
        pred = [classes[max(range(len(p)), key=p.__getitem__)] for p in fold["probabilities"]]
        f = figures(fold["labels"], pred)
        for key in ("accuracy", "uf1", "uar"):
            if abs(f[key] - fold["row"][key]) > 1e-9:
                problems.append(f"folds/{name} {key} {fold['row'][key]} != {f[key]} counted from its probabilities")
    return problems


def compare_runs(expected: dict, actual: dict, machine: dict | None = None) -> tuple[list[str], str]:
    """Compare a run folder's summary with a golden one, as strictly as the machines allow.

    On the machine kind and package versions of the capture (``expected["machine"]``), every value
    is compared (:data:`SAME_MACHINE`). On another kind, structure, configuration, data and labels
    are still compared exactly, trained values within :data:`CROSS_MACHINE`, predicted classes where
    the reference decided by more than twice that tolerance, and the figures counted from them only
    when every decision of the run was that clear. On every machine the run must be consistent
    with itself (:func:`consistency`).

    Returns:
        (differences, how the run was compared: ``same machine`` or ``another machine: ...``).
    """
    machine = machine or this_machine()
    captured = expected.get("machine")
    expected = {k: v for k, v in expected.items() if k != "machine"}
    problems = consistency(actual)
    if captured == machine:
        return problems + compare(expected, actual, **SAME_MACHINE), "same machine"
    tol = CROSS_MACHINE["tol"]
    close = {k: m for k, m in margins(expected).items() if m <= 2 * tol}
    # the TFLite models' agreement counts near-ties of their own (int8 outputs move by 1/256 steps)
    skip = DECISIONS if close else ("/parity/argmax_agreement", "/parity/uf1_", "/parity/within_tolerance")
    diffs = compare(expected, actual, **CROSS_MACHINE, skip=skip)
    if close:  # the clear decisions still hold
        ref = {f"{r['subject']}/{r['clip']}": r["prediction"] for r in expected["predictions"]}
        now = {f"{r['subject']}/{r['clip']}": r["prediction"] for r in actual["predictions"]}
        diffs += [f"/predictions/{k}/prediction: {ref[k]!r} != {now.get(k)!r}" for k in ref
                  if k not in close and now.get(k) != ref[k]]
    how = (f"another machine: captured on {captured and captured.get('machine_kind')} with "
           f"{captured and captured.get('packages')}; compared on {machine['machine_kind']} "
           f"with {machine['packages']}; trained values within {tol:g}; "
           + (f"{len(close)} near-tie decision(s) left out" if close else "every decision was clear"))
    return problems + diffs, how


def capture(dest: Path, work: Path, pythonpath: str | None = None) -> dict[str, dict]:
    """Run both reference runs and write their summaries into ``dest``."""
    cache = work / "cache"
    manifest = make_manifest(work / "manifest", cache)
    runs = {"synthetic_default": train(SYNTHETIC_ARGS, work / "runs", cache, pythonpath),
            "manifest": train(MANIFEST_ARGS + ["--root", str(manifest)], work / "runs", cache, pythonpath)}
    dest.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, run in runs.items():
        out[name] = {"machine": this_machine(), **summarise(run)}
        (dest / f"{name}.json").write_text(json.dumps(out[name], indent=1, sort_keys=True) + "\n")
    return out


if __name__ == "__main__":
    import tempfile

    if len(sys.argv) < 3 or sys.argv[1] != "capture":
        sys.exit("usage: python -m tests.helpers.golden capture OUT_DIR [PYTHONPATH_OF_THE_CODE]")
    with tempfile.TemporaryDirectory() as tmp:
        capture(Path(sys.argv[2]), Path(tmp), sys.argv[3] if len(sys.argv) > 3 else None)


#: A fold trained with others (vectorised, mer_keras.train.vectorized) against the same fold trained
#: alone in the same process: the same float operations but for the order of some sums, so the
#: figures agree to about 1e-7 after a few epochs of a small model (tests/unit/test_vectorized.py).
SAME_FOLD_ATOL = 1e-5


def fold_differences(expected: dict, actual: dict, atol: float = SAME_FOLD_ATOL) -> list[str]:
    """How two fold files (``RUN/folds/<fold>.json``) differ beyond ``atol`` in their trained values
    (probabilities, final training loss and accuracy); every other field is compared exactly."""
    return compare(expected, actual, tol=0.0, loose={"/probabilities": atol, "/final_train_loss": atol,
                                                     "/final_train_accuracy": atol})
