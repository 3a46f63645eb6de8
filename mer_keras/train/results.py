"""Pooled LOSO results of a run, and merging runs that each ran some of the folds.

LOSO folds are independent, so a sweep can spread them over machines
(``mer-keras train --folds sub01,sub02 ...`` on each) and pool them afterwards
(``mer-keras merge RUN ...``). Pooling is what the field reports for CASME II, SAMM, SMIC and the
MEGC2019 composite: one confusion matrix over every test clip of every fold, then accuracy, UF1
(unweighted F1, mean of per-class F1) and UAR (unweighted average recall), as in See et al.,
"MEGC 2019 - The Second Facial Micro-Expressions Grand Challenge", FG 2019.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np

from mer_keras import atomic

#: Options that change a run's fold results: runs merged together must agree on all of them.
RESULT_OPTIONS = ("model", "data", "protocol", "test_data", "apex", "representation", "variant", "epochs",
                  "batch_size", "lr", "seed", "subjects", "clips", "faces", "augment", "class_weight",
                  "flow_method", "aux_weights", "init_from", "freeze_until", "deterministic", "mixed_precision",
                  "representation_config", "dataset", "classes")

#: Files of a run's final model, copied into a merged run from the run that fitted it.
FINAL_MODEL_FILES = ("model.keras", "metadata.json", "model_fp32.tflite", "model_int8.tflite", "export_report.json")


def write_results(dest: Path, info: dict, classes: Sequence[str], rows: Sequence[dict], y: np.ndarray,
                  probs: np.ndarray, fold_rows: Sequence[dict], console=None) -> dict:
    """Pool fold predictions into ``results.json``, ``predictions.csv`` and ``confusion_matrix.png``.

    Args:
        dest: run folder (files written atomically).
        info: run description copied into results.json (model, dataset, protocol, representation,
            counts, skipped, ...).
        rows: per record {"subject", "clip", "database", "label"}; y: (N,) int labels.
        probs: (N, K) float32 probabilities, NaN rows for records in no finished fold.
        fold_rows: one dict per finished fold (subject, n_train, n_test, accuracy, UF1, UAR, ...).
    Returns:
        The results dict: ``overall`` {accuracy, uf1, uar} pooled over tested records, per class,
        confusion matrix, ``per_database`` (when records come from several databases) and folds.
    """
    import pandas as pd

    from mer_keras.train.metrics import compute_metrics, plot_confusion_matrix

    classes = list(classes)
    tested = ~np.isnan(probs).any(1)
    pred = np.where(tested, np.nan_to_num(probs).argmax(1), -1)
    metrics = compute_metrics(y[tested], pred[tested], classes)
    pred_rows = [{**r, "prediction": classes[pred[i]], **{f"p_{c}": float(probs[i, k]) for k, c in enumerate(classes)}}
                 for i, r in enumerate(rows) if tested[i]]
    with atomic.atomic_path(dest / "predictions.csv") as tmp:
        pd.DataFrame(pred_rows).to_csv(tmp, index=False)
    databases = np.array([r["database"] for r in rows])
    per_database = {}
    if len(set(databases[tested])) > 1:  # e.g. the composite: metrics per source database too
        for db in sorted(set(databases[tested])):
            sel = tested & (databases == db)
            m = compute_metrics(y[sel], pred[sel], classes)
            per_database[db] = {k: m[k] for k in ("accuracy", "uf1", "uar")} | {"n": int(sel.sum())}
    results = {**info, "classes": classes, "n_samples": int(tested.sum()),
               "overall": {k: metrics[k] for k in ("accuracy", "uf1", "uar")},
               "per_class": metrics["per_class"], "confusion_matrix": metrics["confusion_matrix"],
               "per_database": per_database, "folds": list(fold_rows)}
    atomic.write_json(dest / "results.json", results)
    plot_confusion_matrix(metrics["confusion_matrix"], classes, dest / "confusion_matrix.png",
                          title=f"{info.get('model', '')} LOSO, UF1 {metrics['uf1']:.3f}")
    if console is not None:
        console.print(f"LOSO pooled over {tested.sum()} clips: accuracy {metrics['accuracy']:.3f}  "
                      f"UF1 {metrics['uf1']:.3f}  UAR {metrics['uar']:.3f}")
        for db, m in per_database.items():
            console.print(f"  {db:<10} n={m['n']:<4} accuracy {m['accuracy']:.3f}  UF1 {m['uf1']:.3f}  "
                          f"UAR {m['uar']:.3f}")
    return results


def read_run(run: Path) -> tuple[dict, dict[str, dict]]:
    """A run folder's config.json and its fold files ``{subject: fold dict}``.

    Raises:
        FileNotFoundError: not a run folder. ValueError: unreadable config or fold file, or a fold
            file without the labels merging needs (fold files written before labels were recorded).
    """
    from mer_keras.train.run import fold_file, read_config

    config = read_config(run, "cannot merge ")
    folds = {}
    for path in sorted((run / "folds").glob("*.json")):
        try:
            fold = json.loads(path.read_text())
            name = fold["subject"]
            n = len(fold["test_keys"])
            if len(fold["probabilities"]) != n or len(fold.get("labels", [])) != n:
                raise ValueError("its test keys, labels and probabilities differ in length (or labels are missing)")
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: not a fold file ({type(exc).__name__}: {exc})") from None
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
        if fold_file(run, name) != path:
            raise ValueError(f"{path}: holds fold {name!r}, not the fold its name says")
        folds[name] = fold
    return config, folds


def merge_runs(runs: Sequence[str | Path], out: str | Path | None = None, partial: bool = False,
               console=None) -> Path:
    """Pool the folds of several runs of the same experiment into one new run folder.

    The runs must agree on every option in :data:`RESULT_OPTIONS` (model, data, seed, epochs, ...).
    A fold present in two runs must have the same test clips and probabilities. The merged folder
    gets config.json (with ``merged_from``), folds/, results.json, predictions.csv and
    confusion_matrix.png; when exactly one run fitted the final model, its files
    (:data:`FINAL_MODEL_FILES`) are copied too, so ``evaluate`` and ``export`` work on the merge.

    Args:
        runs: run folders (``mer-keras train --folds ...`` outputs, finished or not).
        out: parent folder of the merged run (default: the first run's parent).
        partial: pool even when some LOSO subjects have no fold yet (results then say which).
    Returns:
        The merged run folder.
    Raises:
        ValueError: fewer than one run, runs of different experiments (the message names the
            option and both values), conflicting duplicate folds, missing folds without
            ``partial``, or no fold at all. FileNotFoundError: a folder is not a run.
    """
    if not runs:
        raise ValueError("merge needs at least one run folder")
    paths = [Path(r) for r in runs]
    configs, all_folds = [], {}
    for run in paths:
        config, folds = read_run(run)
        if configs:
            for key in RESULT_OPTIONS:
                if config.get(key) != configs[0].get(key):
                    raise ValueError(f"{run}: {key} is {config.get(key)!r} but {paths[0]} has "
                                     f"{configs[0].get(key)!r}; only runs of the same experiment merge")
        configs.append(config)
        for name, fold in folds.items():
            if name in all_folds:
                other = all_folds[name]
                same = (other["test_keys"] == fold["test_keys"]
                        and np.allclose(other["probabilities"], fold["probabilities"], atol=1e-6))
                if not same:
                    raise ValueError(f"fold {name} is in {other['_run']} and {run} with different results; "
                                     "merge only one of them")
                continue
            all_folds[name] = {**fold, "_run": str(run)}
    if not all_folds:
        raise ValueError(f"no finished fold in {', '.join(map(str, paths))}")
    config = configs[0]
    expected = config.get("loso_subjects")
    missing = sorted(set(expected) - set(all_folds)) if expected else []
    if missing and not partial:
        raise ValueError(f"folds missing: {', '.join(missing)} (run them with --folds, or merge with --partial)")
    classes = list(config["classes"])
    rows, y, probs, fold_rows = [], [], [], []
    for name in sorted(all_folds):
        fold = all_folds[name]
        for key, label, p in zip(fold["test_keys"], fold["labels"], fold["probabilities"]):
            database, subject, clip = key.split("/", 2)
            rows.append({"subject": subject, "clip": clip, "database": database, "label": label})
            y.append(classes.index(label))
            probs.append(p)
        fold_rows.append(fold["row"])
    finals = [run for run in paths if (run / "metadata.json").is_file() and (run / "model.keras").is_file()]
    from mer_keras.train.run import fold_file, make_run_dir

    dest = make_run_dir(Path(out) if out else paths[0].parent, config["model"], f"{config.get('dataset', 'data')}-merged")
    for name, fold in all_folds.items():
        atomic.write_json(fold_file(dest, name), {k: v for k, v in fold.items() if k != "_run"})
    if len(finals) == 1:
        for name in FINAL_MODEL_FILES:
            if (finals[0] / name).is_file():
                with atomic.atomic_path(dest / name) as tmp:
                    shutil.copyfile(finals[0] / name, tmp)
    source_results = next((json.loads((r / "results.json").read_text()) for r in paths
                           if (r / "results.json").is_file()), {})
    info = {"model": config["model"], "dataset": config.get("dataset"), "protocol": config.get("protocol"),
            "representation": config.get("representation_config", {}).get("representation"),
            "counts": source_results.get("counts", {}), "skipped": source_results.get("skipped", 0),
            "merged_from": [str(r) for r in paths], "missing_folds": missing}
    results = write_results(dest, info, classes, rows, np.array(y), np.array(probs, np.float32), fold_rows, console)
    merged_config = {**config, "folds": None, "final": bool(finals), "merged_from": info["merged_from"]}
    atomic.write_json(dest / "config.json", merged_config)  # written last: the merge is complete
    if console is not None:
        console.print(f"merged {len(all_folds)} folds from {len(paths)} run(s)"
                      + (f"; final model from {finals[0]}" if len(finals) == 1 else
                         f"; {len(finals)} runs fitted a final model, none copied" if finals else ""), soft_wrap=True)
    return dest

