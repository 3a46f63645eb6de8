"""Step *run the protocol*: the run folder opened (or resumed), the folds trained, the pooled report written."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from mer_keras.data.pipeline import RepresentationConfig
from mer_keras.data.records import Dataset
from mer_keras.errors import RunFolderError
from mer_keras.jobs.inputs import Inputs, progress_bar
from mer_keras.jobs.report import print_report
from mer_keras.jobs.train_options import TrainOptions
from mer_keras.runs import RunFolder, new_run, run_dir_name

#: Options that do not change what a fold computes (where, how fast, how much is written): left
#: out of a fold's identity, and the only ones ``--resume`` accepts besides the run folder.
EXECUTION_OPTIONS = ("resume", "config", "out", "workers", "cache_dir", "folds", "final", "export", "strategy",
                     "parallel_folds", "tensorboard", "backup_minutes", "strict", "root", "faces", "test_root")


#: Options added after fold files recorded their identity, with the value that changes nothing.
LATER_OPTIONS = {"weight_decay": 0.0, "ema": 0.0, "label_smoothing": 0.0, "mixup": False, "cutmix": False,
                 "sampling": "shuffle", "input_norm": "none", "synthetic_capture": "single", "config": None}


def data_fingerprint(data: Dataset) -> str:
    """16 hex digits of sha256 over the records' keys and labels: the data a fold was trained and tested on."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps([data.keys, [r["label"] for r in data.rows]]).encode()).hexdigest()[:16]


def fold_identity(opts: TrainOptions, rep: RepresentationConfig, fingerprint: str, cfg) -> dict:
    """What produced a fold's result: the options that change it, the representation, the training
    config and the data's fingerprint (:func:`data_fingerprint`). Written into each fold file;
    a resumed run refuses fold files whose identity differs (:func:`mer_keras.runs.check_identity`)."""
    import json

    def kept(k, v):  # options added later are left out at their neutral value: older fold files still match
        return k not in EXECUTION_OPTIONS and not (k in LATER_OPTIONS and v in (None, LATER_OPTIONS[k]))

    options = {k: v for k, v in asdict(opts).items() if kept(k, v)}
    training = {k: v for k, v in cfg.to_dict().items() if kept(k, v)}
    return json.loads(json.dumps({"options": options, "representation": asdict(rep), "training": training,
                                  "data": fingerprint}, default=str))


def open_run_folder(opts: TrainOptions, rep: RepresentationConfig, data: Dataset, groups: Sequence[str],
                    strategy, console) -> tuple[RunFolder, dict]:
    """Step *run folder*: a new folder with config.json, or the resumed one with its finished folds.

    The folder is made only once the inputs exist, so bad data leaves no half-made run behind.
    Every worker of a multi-worker run uses the chief's folder name (its backups live there).

    Returns:
        (the run folder, {fold name: finished fold} of a resumed run).
    Raises:
        RunFolderError: a fold file that does not fit the data now, or workers that disagree.
    """
    from mer_keras.data.protocols import PROTOCOLS
    from mer_keras.train.strategy import broadcast_from_chief, is_chief, workers_agree

    if opts.resume:
        run = RunFolder(Path(opts.resume))
        keys = data.keys
        test_keys = {f.name: [keys[i] for i in f.test] for f in PROTOCOLS[opts.protocol].folds(groups)}
        completed = run.completed_folds(test_keys, data.classes)
        if not workers_agree(strategy, len(completed)):  # every worker stops, none waits for the others
            raise RunFolderError(f"{run.path}: the workers see different numbers of finished folds (this one "
                                 f"{len(completed)}); multi-worker resume needs the run folder on a filesystem shared "
                                 "by all workers")
        console.print(f"{len(completed)} fold(s) already done: {', '.join(sorted(completed)) or '-'}", soft_wrap=True)
        return run, completed
    chief = is_chief(strategy)
    when = broadcast_from_chief(strategy, time.time())
    k = 0
    if chief:
        run, k = new_run(opts.out, opts.model, data.name, when=when)
    k = int(broadcast_from_chief(strategy, k))  # after the chief made its folder
    if not chief:  # the chief's name; created here only when the disk is not shared
        run = RunFolder(run_dir_name(opts.out, opts.model, data.name, when, k))
        run.path.mkdir(parents=True, exist_ok=True)
    else:
        from mer_keras.environment import environment_record

        run.write_config({**asdict(opts), "representation_config": asdict(rep), "dataset": data.name,
                          "classes": data.classes, "loso_subjects": sorted(set(groups)), "cwd": os.getcwd(),
                          "environment": environment_record()})
    return run, {}


def run_protocol(opts: TrainOptions, rep: RepresentationConfig, cfg, data: Dataset, inputs: Inputs,
                 groups: Sequence[str], only: list[str] | None, run: RunFolder, completed: dict, strategy,
                 console, cfg_of=None, extra_info: dict | None = None, final: np.ndarray | None = None,
                 on_final=None) -> dict | None:
    """Step *protocol folds*: train and test every fold (finished ones reused), write each fold file as
    it ends, then the protocol's pooled report (results.json, predictions.csv, confusion matrix).

    Args:
        cfg_of: fold name -> its :class:`TrainConfig` (nested selection gives each test subject its
            own recipe); None: ``cfg`` for every fold. Folds of equal configs train together.
        extra_info: more keys for results.json (e.g. the selection).
        final, on_final: the final model's training clips (indices); where it can train in a program
            of folds (:func:`~mer_keras.train.folds.run_folds`), ``on_final`` is called with the
            fitted registry model, before the pooled report.
    Returns:
        The results as written (None on a non-chief worker).
    """
    from mer_keras.data.checks import raise_if_strict, untrained_classes
    from mer_keras.data.protocols import PROTOCOLS
    from mer_keras.jobs.report import print_warnings
    from mer_keras.runs import check_identity
    from mer_keras.train.folds import folds_by_config, run_folds
    from mer_keras.train.strategy import is_chief

    protocol = PROTOCOLS[opts.protocol]
    chief = is_chief(strategy)
    classes, keys, y = data.classes, data.keys, inputs.y
    folds = protocol.folds(groups, only=only)
    fold_warnings = untrained_classes(folds, [classes[k] for k in y], classes)
    raise_if_strict(fold_warnings, opts.strict, "fold")  # before any training
    print_warnings(fold_warnings, console)
    fingerprint = data_fingerprint(data)  # once: it hashes every record
    identity = {f.name: fold_identity(opts, rep, fingerprint, cfg_of(f.name) if cfg_of else cfg) for f in folds}
    for name, done in completed.items():
        if name in identity:
            check_identity(done.get("path", name), done.get("identity"), identity[name])
    aus = data.aus if opts.spec.aux_losses else None
    with progress_bar(console) as prog:
        fold_task = prog.add_task("LOSO folds", total=len(folds), info="")
        # one bar over every fold's epochs: a program of K folds advances it by K per epoch
        pending_epochs = sum((cfg_of(f.name) if cfg_of else cfg).epochs for f in folds if f.name not in completed)
        epoch_task = prog.add_task("fold-epochs", total=pending_epochs, info="")

        callbacks = program_callbacks(prog, fold_task, epoch_task, run if chief else None, opts.tensorboard)

        def fold_end(fold, p, row):
            if chief:
                run.write_fold(fold.name, classes, [keys[i] for i in fold.test], [classes[y[i]] for i in fold.test],
                               p, row, identity=identity[fold.name])
            prog.update(fold_task, advance=1)

        prog.update(fold_task, advance=len([f for f in folds if f.name in completed]))
        plans = folds_by_config(folds, cfg_of or (lambda name: cfg))  # folds of one config train in one call
        probs = np.full((len(y), len(classes)), np.nan, np.float32)
        fold_rows = {}
        for c, plan_folds in plans:
            joined = {"final": final} if final is not None and len(plans) == 1 else {}
            result = run_folds(inputs.x, y, plan_folds, classes, c, strategy, fold_callbacks=callbacks,
                               on_fold_end=fold_end, aus=aus, completed=completed, backup_root=run.backup_root,
                               **joined)
            if "final_model" in result and on_final:
                on_final(result["final_model"]())
            for f in plan_folds:
                probs[f.test] = result["probabilities"][f.test]
            fold_rows.update({r["subject"]: r for r in result["folds"]})
    if not chief:
        return None
    return pooled_report(opts, rep, data, protocol, groups, folds, fold_rows, y, probs, run, console,
                         [*data.warnings, *fold_warnings], extra_info)


def program_callbacks(prog, fold_task, epoch_task, run: RunFolder | None, tensorboard: bool):
    """The callbacks of each training program of folds, as a function of its folds (for
    :func:`~mer_keras.train.folds.run_folds`): the progress bars, and on the chief (``run`` given)
    each fold's epoch history (``fold<j>_...`` figures) and, with ``tensorboard``, one TensorBoard
    run per test subject."""
    from mer_keras.jobs.inputs import completed_count
    from mer_keras.train.callbacks import EpochHistory, ProgressCallback
    from mer_keras.train.folds import FINAL

    def callbacks(group):
        tested = [f for f in group if f.name != FINAL]  # the final model joins a program as one more fold
        names = ", ".join(f.name for f in tested[:3]) + (f" (+{len(tested) - 3} trained at once)"
                                                        if len(tested) > 3 else "")
        names += " and the final model" if len(tested) < len(group) else ""
        prog.update(fold_task, info=f"test subject{'s' if len(tested) > 1 else ''} {names}")
        extra = [ProgressCallback(prog, epoch_task, folds=len(tested), base=completed_count(prog, epoch_task))]
        if run is not None:  # every program logs fold j's figures as fold<j>_...
            positions = [j for j, f in enumerate(group) if f.name != FINAL]
            prefixes = [f"fold{j}_" for j in positions]
            extra.append(EpochHistory([run.history_path(group[j].name) for j in positions], prefixes))
            if tensorboard:  # one TensorBoard run per subject
                from mer_keras.data.protocols import fold_stem
                from mer_keras.train.callbacks import FoldTensorBoard

                extra.append(FoldTensorBoard([run.path / "tensorboard" / fold_stem(group[j].name)
                                              for j in positions], prefixes))
        return extra

    return callbacks


def pooled_report(opts: TrainOptions, rep: RepresentationConfig, data: Dataset, protocol, groups: Sequence[str],
                  folds: list, fold_rows: dict, y: np.ndarray, probs: np.ndarray, run: RunFolder, console,
                  warnings: list[str], extra_info: dict | None) -> dict:
    """Step *report*: the protocol's pooled figures over the folds done (results.json,
    predictions.csv, confusion matrix, training curves), printed; a resumed run's folds trained on
    another machine said and kept in results.json.

    Args:
        y: (N,) int labels; probs: (N, K) float32 probabilities (NaN rows: clips of folds not run).
        warnings: the data's and the folds' warnings, recorded with the machines'.
    Returns:
        The results as written.
    """
    from mer_keras.environment import fold_machines_warning
    from mer_keras.jobs.report import print_warnings

    machine_warnings = fold_machines_warning({n: f.get("machine_kind") for n, f in run.read_folds().items()
                                              if n in fold_rows})
    print_warnings(machine_warnings, console)
    rows = data.rows
    report = protocol.report(y, probs, data.classes, [r["database"] for r in rows])
    info = {"model": opts.model, "dataset": data.name, "protocol": opts.protocol,
            "representation": rep.representation, "counts": data.counts, "skipped": len(data.skipped),
            "warnings": [*warnings, *machine_warnings], **(extra_info or {})}
    every = protocol.folds(groups)
    done = [f for f in folds if f.name in fold_rows]
    cover = f"all {len(every)}" if len(done) == len(every) else f"{len(done)} of {len(every)}"
    results = run.write_results(info, report, rows, probs, [fold_rows[f.name] for f in done],
                                title=f"{opts.model} {opts.protocol.upper()}, UF1 {report['overall']['uf1']:.3f}"
                                      f" ({cover} folds)")
    run.plot_training(results, cover)
    print_report(report, console)
    return results
