"""``mer-keras merge``: pool the folds of runs that each ran some of them into one run folder.

LOSO folds are independent, so a sweep can spread them over machines
(``mer-keras train --folds sub01,sub02 ...`` on each) and pool them afterwards
(``mer-keras merge RUN ...``). Pooling is what the field reports for CASME II, SAMM, SMIC and the
MEGC2019 composite: one confusion matrix over every test clip of every fold, then accuracy, UF1
and UAR (See et al., "MEGC 2019 - The Second Facial Micro-Expressions Grand Challenge", FG 2019).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mer_keras import atomic
from mer_keras.errors import OptionError, RunFolderError
from mer_keras.jobs.schema import option
from mer_keras.runs import FINAL_MODEL_FILES, RunFolder, new_run, record_of

#: Options that change a run's fold results: runs merged together must agree on all of them.
RESULT_OPTIONS = ("model", "data", "protocol", "test_data", "apex", "representation", "variant", "epochs",
                  "batch_size", "lr", "seed", "subjects", "clips", "faces", "augment", "shift", "class_weight",
                  "flow_method", "aux_weights", "init_from", "freeze_until", "deterministic", "mixed_precision",
                  "representation_config", "dataset", "classes", "synthetic_expression", "weight_decay", "ema",
                  "label_smoothing", "mixup", "cutmix", "sampling", "input_norm", "synthetic_capture")


def recorded(config: dict, key: str):
    """A config.json's value of ``key``; an option added after the run was recorded (absent, or
    None) reads as its neutral value (:data:`mer_keras.jobs.protocol_run.LATER_OPTIONS`)."""
    from mer_keras.jobs.protocol_run import LATER_OPTIONS

    value = config.get(key)
    return LATER_OPTIONS.get(key) if value is None and key in LATER_OPTIONS else value


@dataclass
class MergeOptions:
    """Options of ``mer-keras merge``."""

    runs: list[str] = option(help="Run folders of the same experiment (e.g. one per --folds job).", argument=True)
    out: str | None = option(None, "Parent folder of the merged run (default: the first run's).")
    partial: bool = option(False, "Pool even when some subjects have no fold yet.")


def merge(opts: MergeOptions, console=None) -> Path:
    """Pool the folds of several runs of the same experiment into one new run folder.

    The runs must agree on every option in :data:`RESULT_OPTIONS` (model, data, seed, epochs, ...).
    A fold present in two runs must have the same test clips and probabilities. The merged folder
    gets config.json (with ``merged_from`` and each run's ``environments``), folds/, results.json
    (with ``warnings`` when the runs or their folds come from different machines or package
    versions: :func:`mer_keras.environment.differences`), predictions.csv and
    confusion_matrix.png; when exactly one run fitted the final model, its files
    (:data:`~mer_keras.runs.FINAL_MODEL_FILES`) are copied too, so ``evaluate`` and ``export`` work
    on the merge.

    Returns:
        The merged run folder.
    Raises:
        OptionError: no run, runs of different experiments (the message names the option and both
            values), or missing folds without ``partial``. RunFolderError: conflicting duplicate
            folds, a bad fold file, or no fold at all. MissingFileError: a folder is not a run.
    """
    from mer_keras.jobs.schema import validate

    validate(opts)
    from mer_keras.data.protocols import LOSO
    from mer_keras.jobs.outputs import check_writable
    from mer_keras.jobs.report import print_report
    from mer_keras.models.io import read_json

    if not opts.runs:
        raise OptionError("merge needs at least one run folder")
    folders = [RunFolder(Path(r)) for r in opts.runs]
    check_writable(Path(opts.out) if opts.out else folders[0].path.parent)  # before anything is read
    configs, all_folds = read_runs(folders)
    if not all_folds:
        raise RunFolderError(f"no finished fold in {', '.join(str(r.path) for r in folders)}")
    config = configs[0]
    expected = config.get("loso_subjects")
    missing = sorted(set(expected) - set(all_folds)) if expected else []
    if missing and not opts.partial:
        raise OptionError(f"folds missing: {', '.join(missing)} (run them with --folds, or merge with --partial)")
    classes = list(config["classes"])
    rows, y, probs, fold_rows = pooled_folds(all_folds, classes)
    source_results = next((read_json(r.path / "results.json") for r in folders  # read before anything is written
                           if (r.path / "results.json").is_file()), {})
    finals = [r.path for r in folders if (r.path / "metadata.json").is_file() and (r.path / "model.keras").is_file()]
    dest, _ = new_run(Path(opts.out) if opts.out else folders[0].path.parent, config["model"],
                      f"{config.get('dataset', 'data')}-merged")
    for name, fold in all_folds.items():
        atomic.write_json(dest.fold_file(name), {k: v for k, v in fold.items() if k != "_run"})
    if len(finals) == 1:
        for name in FINAL_MODEL_FILES:
            if (finals[0] / name).is_file():
                with atomic.atomic_path(dest.path / name) as tmp:
                    shutil.copyfile(finals[0] / name, tmp)
    from mer_keras.environment import differences, fold_machines_warning

    warnings = [*differences({str(r.path): c.get("environment") for r, c in zip(folders, configs)}),
                *fold_machines_warning({n: f.get("machine_kind") for n, f in all_folds.items()})]
    info = {"model": config["model"], "dataset": config.get("dataset"), "protocol": config.get("protocol"),
            "representation": config.get("representation_config", {}).get("representation"),
            "counts": source_results.get("counts", {}), "skipped": source_results.get("skipped", 0),
            "merged_from": [str(r.path) for r in folders], "missing_folds": missing, "warnings": warnings}
    report = LOSO().report(y, probs, classes, [r["database"] for r in rows])
    dest.write_results(info, report, rows, probs, fold_rows,
                       title=f"{config['model']} LOSO, UF1 {report['overall']['uf1']:.3f}")
    if console is not None:
        from mer_keras.jobs.report import print_warnings

        print_warnings(warnings, console)
        print_report(report, console)
    dest.write_config({**config, "folds": None, "final": bool(finals), "merged_from": info["merged_from"],
                       "environments": {str(r.path): c.get("environment") for r, c in zip(folders, configs)}})
    if console is not None:
        console.print(f"merged {len(all_folds)} folds from {len(folders)} run(s)"
                      + (f"; final model from {finals[0]}" if len(finals) == 1 else
                         f"; {len(finals)} runs fitted a final model, none copied" if finals else ""), soft_wrap=True)
    return dest.path


def read_runs(folders: list[RunFolder]) -> tuple[list[dict], dict[str, dict]]:
    """Step *read the runs*: each run's config.json and fold files, checked to be one experiment
    (:data:`RESULT_OPTIONS`) and to agree on every fold two of them hold.

    Returns:
        ([config of each run], {fold name: fold file's dict with ``_run``, the run it came from}).
    Raises:
        RunFolderError: a folder that is not a run, a bad fold file, or one fold with different
            results in two runs. OptionError: runs of different experiments (the option and both
            values named).
    """
    from mer_keras.jobs.outputs import not_a_folder

    configs, all_folds = [], {}
    for run in folders:
        if not run.path.is_dir():
            raise RunFolderError(f"{run.path}: {not_a_folder(run.path)}; expected a run "
                                 "folder (config.json, folds/)")
        config = run.read_config("cannot merge ")
        folds = run.read_folds()
        for name, fold in folds.items():
            if "labels" not in fold:
                raise RunFolderError(f"{run.fold_file(name)}: its test keys, labels and probabilities differ in length "
                                     "(or labels are missing)")
        if configs:
            for key in RESULT_OPTIONS:
                if recorded(config, key) != recorded(configs[0], key):
                    raise OptionError(f"{run.path}: {key} is {config.get(key)!r} but {folders[0].path} has "
                                      f"{configs[0].get(key)!r}; only runs of the same experiment merge")
        configs.append(config)
        for name, fold in folds.items():
            if name in all_folds:
                other = all_folds[name]
                same = (other["test_keys"] == fold["test_keys"]
                        and np.allclose(other["probabilities"], fold["probabilities"], atol=1e-6))
                if not same:
                    raise RunFolderError(f"fold {name} is in {other['_run']} and {run.path} with different results; "
                                         "merge only one of them")
                continue
            all_folds[name] = {**fold, "_run": str(run.path)}
    return configs, all_folds


def pooled_folds(all_folds: dict[str, dict], classes: list[str]):
    """Every fold's test clips pooled in fold-name order.

    Returns:
        (records of the clips, (N,) int labels, (N, K) float32 probabilities, the folds' rows).
    """
    rows, y, probs, fold_rows = [], [], [], []
    for name in sorted(all_folds):
        fold = all_folds[name]
        for key, label, p in zip(fold["test_keys"], fold["labels"], fold["probabilities"]):
            rows.append(record_of(key, label))
            y.append(classes.index(label))
            probs.append(p)
        fold_rows.append(fold["row"])
    return rows, np.array(y), np.array(probs, np.float32), fold_rows
