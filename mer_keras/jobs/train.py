"""``mer-keras train``, the main job: resolve options -> load data -> build inputs -> protocol folds
-> pooled report -> final fit -> export, into one run folder (:mod:`mer_keras.runs`).

Its options are :class:`mer_keras.jobs.train_options.TrainOptions` (the job's schema); the final
model step is :mod:`mer_keras.jobs.final_model`.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, fields, replace
from pathlib import Path

import numpy as np

from mer_keras.data.pipeline import RepresentationConfig
from mer_keras.data.records import Dataset
from mer_keras.errors import OptionError, RunFolderError
from mer_keras.jobs.final_model import final_indices, fit_final
from mer_keras.jobs.inputs import DataRequest, Inputs, build_dataset_inputs, check_trainable, load_data, progress_bar
from mer_keras.jobs.schema import validate
from mer_keras.jobs.train_options import TrainOptions, options_from_config
from mer_keras.runs import RunFolder, new_run, run_dir_name
from mer_keras.train.config import TrainConfig


def resume_with(given: TrainOptions) -> TrainOptions:
    """The options of the run ``given.resume`` names, with the execution options given (workers,
    cache, backups, ...: :data:`EXECUTION_OPTIONS`) applied.

    Raises:
        OptionError: an option given that would change the results and differs from the run's
            recorded value (each named, with both values).
    """
    recorded = resume_options(given.resume)
    resolved, rep = resolve_options(recorded)  # options a recipe or the model fills are recorded as None
    effective = {**asdict(resolved), **{k: getattr(rep, k) for k in ("representation", "flow_method", "flow_encoding",
                                                                      "dynamic_image")}}
    default = TrainOptions()
    conflicts, execution = [], {}
    for f in fields(TrainOptions):
        value = getattr(given, f.name)
        if f.name == "resume" or value == getattr(default, f.name):
            continue  # not given (or given as the default, which cannot be told apart)
        if f.name in EXECUTION_OPTIONS:
            execution[f.name] = value
        elif value not in (getattr(recorded, f.name), effective[f.name]):
            conflicts.append(f"--{f.name.replace('_', '-')} {value!r} (the run has {effective[f.name]!r})")
    if conflicts:
        raise OptionError(f"--resume {given.resume}: {'; '.join(conflicts)}; a resumed run keeps the options it was "
                          "made with: drop these, or start a new run")
    return replace(recorded, **execution)


def with_config(given: TrainOptions) -> TrainOptions:
    """``mer-keras train --config RUN``: the options recorded in the run's config.json (a folder or
    the file), with every option given beside ``--config`` (not at its default) replacing the
    recorded one; a new run, never a resumed one.

    Raises:
        MissingFileError, RunFolderError: no readable config.json. OptionError: with ``--resume``,
            or a recorded value out of range (named with the file and key).
    """
    if given.resume:
        raise OptionError("--config starts a new run from recorded options; --resume continues one: give one of them")
    path = Path(given.config)
    folder = RunFolder(path if path.is_dir() else path.parent)
    config = folder.read_config("cannot run again from ")
    if "space" in config or "ensemble_of" in config:
        raise RunFolderError(f"{given.config}: made by mer-keras {'tune' if 'space' in config else 'ensemble'}; "
                             "--config re-runs a train run")
    recorded = options_from_config(config, folder.path / "config.json")
    default = TrainOptions()
    changed = {f.name: getattr(given, f.name) for f in fields(TrainOptions)
               if f.name not in ("config", "resume") and getattr(given, f.name) != getattr(default, f.name)}
    return replace(recorded, **{"out": default.out, "resume": None, **changed, "config": str(given.config)})


def resume_options(run: str | Path) -> TrainOptions:
    """The options of an interrupted run, from its config.json (``resume`` set to the folder).

    Raises:
        MissingFileError: no config.json. RunFolderError: unreadable, or the run already finished.
    """
    folder = RunFolder(Path(run))
    config = folder.read_config("cannot resume ")
    if "space" in config:
        raise RunFolderError(f"{run} was made by mer-keras tune (its folds have their own recipes): resume it with "
                             "tune --resume")
    if "ensemble_of" in config:
        raise RunFolderError(f"{run} is an ensemble of other runs (mer-keras ensemble): nothing to train in it")
    opts = options_from_config(config, folder.path / "config.json", resume=str(run))
    refuse_finished(folder, opts.wants_final)
    return opts


def refuse_finished(folder: RunFolder, wants_final: bool) -> None:
    """RunFolderError when a run to resume has finished: metadata.json written, or results.json of a
    run without a final model (each is written last)."""
    if folder.complete or (not wants_final and (folder.path / "results.json").exists()):
        raise RunFolderError(f"{folder.path} is complete (metadata.json, or results.json of a run without a final "
                             "model, is written last); nothing to resume")


def fixed_input(opts: TrainOptions, rep: RepresentationConfig, data_spec) -> RepresentationConfig:
    """``rep`` as the ready images of ``data_spec`` (:attr:`DatasetSpec.fixed_input`) are: their
    representation is required, their encoding recorded (deployment encodes video as they were).

    Raises:
        OptionError: the model takes another representation (the models that fit are named), or
            ``--flow-encoding`` asks for another encoding than the images hold.
    """
    from mer_keras.factory import get_spec, list_models

    fixed = data_spec.fixed_input
    want, encoding = fixed["representation"], fixed.get("flow_encoding")
    if rep.representation != want:
        fitting = ", ".join(n for n in list_models() if get_spec(n).representation == want)
        hint = "" if opts.spec.representation == "sequence" else \
            f", or --representation {want}" + (f" (with --input-size {fixed['size']} to keep the images' size)"
                                               if fixed.get("size") else "")
        raise OptionError(f"--data {data_spec.name} holds {fixed['what']}; {opts.model} takes {rep.representation} "
                          f"inputs: use a {want} model ({fitting}){hint}")
    if encoding and opts.flow_encoding and opts.flow_encoding != encoding:
        raise OptionError(f"--flow-encoding {opts.flow_encoding}: {fixed['why']}; a model trained on them takes "
                          f"--flow-encoding {encoding}")
    return replace(rep, flow_encoding=encoding) if encoding else rep


def resolve_options(opts: TrainOptions) -> tuple[TrainOptions, RepresentationConfig]:
    """Step *resolve options*: check every option, fill the model's defaults; nothing is built.

    Returns:
        (the options as the run records them, with ``lr`` set; the input representation).
    Raises:
        OptionError, UnknownNameError: a bad value or combination (named). MissingFileError:
            ``--init-from`` does not exist.
    """

    validate(opts)
    from mer_keras.jobs.train_options import absolute_paths

    # recorded absolute: export, explain and --resume read the run from any working folder
    opts = replace(opts, **absolute_paths(asdict(opts), os.getcwd()))
    from mer_keras.data.datasets import dataset_spec

    spec, data_spec = opts.spec, dataset_spec(opts.data)
    if opts.synthetic_expression != "micro" and not data_spec.generated:
        raise OptionError(f"--synthetic-expression {opts.synthetic_expression} applies to the synthetic set, not "
                          f"--data {opts.data}")
    if opts.synthetic_capture != "single" and not data_spec.generated:
        raise OptionError(f"--synthetic-capture {opts.synthetic_capture} applies to the synthetic set, not "
                          f"--data {opts.data}")
    if opts.sampling == "balanced" and opts.class_weight is None:  # the batches are balanced, not the loss
        opts = replace(opts, class_weight=False)
    if opts.input_norm == "database":
        if opts.final:
            raise OptionError("--input-norm database evaluates the protocol only: a final model would need its "
                              "database's statistics at inference; drop --final")
        opts = replace(opts, final=False)
    opts = apply_recipe(opts, spec.recipe(opts.recipe) if opts.recipe else {})
    if opts.lr is None:
        opts = replace(opts, lr=spec.learning_rate)  # recorded in config.json as used
    rep = spec.data_config(opts.representation, opts.flow_method)
    if opts.input_size:
        rep = replace(rep, size=opts.input_size, crop=max(128, opts.input_size))
    if opts.shift and opts.shift >= rep.size:  # every pixel would be an edge repeated
        raise OptionError(f"--shift {opts.shift}: expected fewer pixels than the input's side ({rep.size} px)")
    if data_spec.fixed_input:
        rep = fixed_input(opts, rep, data_spec)
    elif opts.flow_encoding:
        if rep.representation != "flow":
            raise OptionError(f"--flow-encoding applies to flow inputs; {opts.model} takes {rep.representation}")
        rep = replace(rep, flow_encoding=opts.flow_encoding)
    if opts.dynamic_image:
        if rep.representation != "dynamic_image":
            raise OptionError(f"--dynamic-image applies to dynamic-image inputs; {opts.model} takes "
                              f"{rep.representation}")
        rep = replace(rep, dynamic_image=opts.dynamic_image)
    spec.check_variant(opts.variant)
    if opts.freeze_until and not opts.init_from:
        raise OptionError("--freeze-until needs --init-from (freezing random weights is never wanted)")
    if opts.init_from:
        from mer_keras.presets import resolve
        from mer_keras.train.transfer import resolve_init_source

        opts = replace(opts, init_from=str(resolve(opts.init_from)))  # a preset's name: recorded as its folder
        resolve_init_source(opts.init_from)  # a missing source fails before any work
    if opts.aux_weights:
        from mer_keras.train.targets import aux_losses_for

        aux_losses_for(spec.aux_losses, opts.aux_weights)
    train_config(opts, rep)  # the training library's own checks (e.g. --sampling balanced with class weights)
    return opts, rep


def apply_recipe(opts: TrainOptions, recipe: dict) -> TrainOptions:
    """``opts`` with every recipe option that was not given (``None``) filled: the recipe's value,
    else the project's default (:class:`~mer_keras.train.config.TrainConfig`).

    An option given explicitly keeps its value (``--recipe paper --epochs 50``, or ``--augment``
    under a recipe without flips); ``lr`` stays ``None`` without a recipe value (the model's
    rate is filled later). The result records the values used.
    """
    from mer_keras.registry import RECIPE_KEYS
    from mer_keras.train.config import TrainConfig

    project = TrainConfig()  # its lr is None (the model's) and it has no variant: those stay None
    changes = {k: recipe.get(k, getattr(project, k, None)) for k in RECIPE_KEYS if getattr(opts, k) is None}
    return replace(opts, **{k: v for k, v in changes.items() if v is not None})


def train_config(opts: TrainOptions, rep: RepresentationConfig) -> TrainConfig:
    """The training library's view of the options (:class:`mer_keras.train.config.TrainConfig`)."""
    return TrainConfig(model=opts.model, epochs=opts.epochs, batch_size=opts.batch_size, lr=opts.lr, seed=opts.seed,
                       augment=opts.augment, shift=opts.shift, class_weight=opts.class_weight,
                       model_options={"variant": opts.variant} if opts.variant else {},
                       flow_input=rep.representation == "flow", aux_weights=dict(opts.aux_weights or {}),
                       init_from=opts.init_from, freeze_until=opts.freeze_until, deterministic=opts.deterministic,
                       mixed_precision=opts.mixed_precision, backup_minutes=opts.backup_minutes,
                       parallel_folds=opts.parallel_folds, weight_decay=opts.weight_decay or 0.0, ema=opts.ema or 0.0,
                       label_smoothing=opts.label_smoothing or 0.0, mixup=bool(opts.mixup),
                       cutmix=bool(opts.cutmix), sampling=opts.sampling or "shuffle")


def check_init_source(init_from: str, dataset: str, protocol: str, console) -> None:
    """Refuse transfer learning from a final model fitted on the data being evaluated.

    A run's ``model.keras`` is fitted on every subject, so starting LOSO on the same dataset from
    it puts each test subject in the initial weights. The source's ``metadata.json`` (beside the
    model, or in the run folder) names its dataset.

    Raises:
        OptionError: the source was trained on ``dataset`` (or, for a composite, on a part of it).
        ModelFileError: its metadata.json is not JSON.
    """
    from mer_keras.models.io import read_json

    src = Path(init_from)
    meta_path = (src if src.is_dir() else src.parent) / "metadata.json"
    if not meta_path.is_file():
        console.print(f"[yellow]note:[/] {init_from} has no metadata.json beside it: make sure it never saw the "
                      "test subjects of this run", soft_wrap=True)
        return
    from mer_keras.data.datasets import databases_of

    source = read_json(meta_path).get("dataset")  # names an empty file, bad JSON or a list
    if isinstance(source, str) and databases_of(source) & databases_of(dataset):
        raise OptionError(f"--init-from {init_from} was trained on {source}, which holds the test subjects of this "
                          f"{protocol} run on {dataset}: its weights would leak them. Pre-train on other data.")


def probe_model(opts: TrainOptions, rep: RepresentationConfig, data: Dataset):
    """The model the folds will build, built once before any fold, so that an input size its layers
    cannot take (``--input-size``) fails at once with the reason.

    Raises:
        OptionError: the builder refuses ``rep.input_shape`` (Keras' message is quoted).
    """
    from mer_keras.factory import create_model

    try:
        return create_model(opts.model, len(data.classes), input_shape=rep.input_shape,
                            **({"variant": opts.variant} if opts.variant else {}))
    except ValueError as exc:
        if not opts.input_size:
            raise
        first = str(exc).strip().splitlines()[0][:300]
        raise OptionError(f"--input-size {opts.input_size}: {opts.model} cannot take inputs of shape "
                          f"{rep.input_shape} ({first}); its registered input is "
                          f"{opts.spec.input_shape}") from None


def check_transfer(opts: TrainOptions, rep: RepresentationConfig, data: Dataset, console) -> None:
    """Step *check transfer*: the ``--init-from`` source must not hold the test subjects, and its
    layers must match (checked on the model before any fold)."""
    from mer_keras.train.transfer import initialise_from

    check_init_source(opts.init_from, data.name, opts.protocol, console)
    probe = probe_model(opts, rep, data)
    report = initialise_from(probe, opts.init_from, opts.freeze_until)  # fails early, before any fold
    console.print(f"--init-from {opts.init_from}: {len(report['copied'])} layers copied, "
                  f"{len(report['skipped'])} left at their initialisation "
                  f"({', '.join(report['skipped'][:6])}{', ...' if len(report['skipped']) > 6 else ''}), "
                  f"{report['frozen']} frozen", soft_wrap=True)


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
    from mer_keras.jobs.inputs import completed_count, print_warnings
    from mer_keras.runs import check_identity
    from mer_keras.train.callbacks import EpochHistory, ProgressCallback
    from mer_keras.train.folds import FINAL, folds_by_config, run_folds
    from mer_keras.train.strategy import is_chief

    protocol = PROTOCOLS[opts.protocol]
    chief = is_chief(strategy)
    classes, keys, rows, y = data.classes, data.keys, data.rows, inputs.y
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

        def callbacks(group):
            tested = [f for f in group if f.name != FINAL]  # the final model joins a program as one more fold
            names = ", ".join(f.name for f in tested[:3]) + (f" (+{len(tested) - 3} trained at once)"
                                                            if len(tested) > 3 else "")
            names += " and the final model" if len(tested) < len(group) else ""
            prog.update(fold_task, info=f"test subject{'s' if len(tested) > 1 else ''} {names}")
            extra = [ProgressCallback(prog, epoch_task, folds=len(tested), base=completed_count(prog, epoch_task))]
            if chief:  # every program logs fold j's figures as fold<j>_...
                positions = [j for j, f in enumerate(group) if f.name != FINAL]
                prefixes = [f"fold{j}_" for j in positions]
                extra.append(EpochHistory([run.history_path(group[j].name) for j in positions], prefixes))
                if opts.tensorboard:  # one TensorBoard run per subject
                    from mer_keras.data.protocols import fold_stem
                    from mer_keras.train.callbacks import FoldTensorBoard

                    extra.append(FoldTensorBoard([run.path / "tensorboard" / fold_stem(group[j].name)
                                                  for j in positions], prefixes))
            return extra

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
    from mer_keras.environment import fold_machines_warning

    # a resumed run may hold folds trained on another machine: said, and kept in results.json
    machine_warnings = fold_machines_warning({n: f.get("machine_kind") for n, f in run.read_folds().items()
                                              if n in fold_rows})
    print_warnings(machine_warnings, console)
    report = protocol.report(y, probs, classes, [r["database"] for r in rows])
    info = {"model": opts.model, "dataset": data.name, "protocol": opts.protocol,
            "representation": rep.representation, "counts": data.counts, "skipped": len(data.skipped),
            "warnings": [*data.warnings, *fold_warnings, *machine_warnings], **(extra_info or {})}
    every = protocol.folds(groups)
    done = [f for f in folds if f.name in fold_rows]
    cover = f"all {len(every)}" if len(done) == len(every) else f"{len(done)} of {len(every)}"
    results = run.write_results(info, report, rows, probs, [fold_rows[f.name] for f in done],
                                title=f"{opts.model} {opts.protocol.upper()}, UF1 {report['overall']['uf1']:.3f}"
                                      f" ({cover} folds)")
    run.plot_training(results, cover)
    print_report(report, console)
    return results


def print_report(report: dict, console) -> None:
    """The pooled figures, and per database when there are several."""
    m = report["overall"]
    console.print(f"LOSO pooled over {report['n_samples']} clips: accuracy {m['accuracy']:.3f}  "
                  f"UF1 {m['uf1']:.3f}  UAR {m['uar']:.3f}")
    for db, m in report["per_database"].items():
        console.print(f"  {db:<10} n={m['n']:<4} accuracy {m['accuracy']:.3f}  UF1 {m['uf1']:.3f}  UAR {m['uar']:.3f}")


def train(opts: TrainOptions, console=None) -> Path:
    """Run the main job and return the run folder.

    With ``opts.resume`` (a run folder), the options come from its config.json, folds already
    finished (``RUN/folds/*.json``) are not trained again, the fold in progress continues from its
    last finished epoch (``RUN/backup/<fold>``, Keras ``BackupAndRestore``), and the job ends as an
    uninterrupted run with the same seed would.

    ``opts.folds`` runs only those LOSO test subjects (``["none"]``: no fold, only the final model);
    ``mer-keras merge`` pools such runs. Under ``--strategy multiworker`` every worker runs this
    same function; the chief writes the run folder, the others write only their training backups
    (``RUN/backup/<fold>/workertemp_<i>``, Keras' layout) and print the chief's folder.

    Raises:
        MerKerasError: bad options, data or run folder (the message names the problem).
    """
    from rich.console import Console

    from mer_keras.data.protocols import PROTOCOLS
    from mer_keras.train.strategy import get_strategy, is_chief

    console = console or Console()
    t_start = time.perf_counter()
    validate(opts)  # the options given, before any work (a resumed run's recorded ones: resume_options)
    if opts.config:
        opts = with_config(opts)
        console.print(f"the options recorded in {opts.config}, with those given beside it", soft_wrap=True)
    if opts.resume:
        opts = resume_with(opts)
        console.print(f"resuming {opts.resume} with its recorded options", soft_wrap=True)
    opts, rep = resolve_options(opts)
    from mer_keras.jobs.evaluate import check_outputs  # every output checked before any work (issue 22)
    check_outputs(opts.resume or opts.out, opts.cache_dir, "--resume" if opts.resume else "--out")
    strategy = get_strategy(opts.strategy)  # a multi-worker strategy must exist before any TF op
    chief = is_chief(strategy)
    data = load_data(DataRequest.of(opts), console)
    check_trainable(data, opts.root)
    if opts.init_from:
        check_transfer(opts, rep, data, console)
    elif opts.input_size:
        probe_model(opts, rep, data)
    inputs = normalised_inputs(build_dataset_inputs(data, rep, console, cache_dir=opts.cache_dir,
                                                    workers=opts.workers, strict=opts.strict), data, opts, rep)
    protocol = PROTOCOLS[opts.protocol]
    groups = protocol.groups(data.rows, data.test_databases)
    if opts.folds and list(opts.folds) == ["none"]:
        only = []
    elif opts.folds:
        only = protocol.select(groups, opts.folds)
    else:
        only = None if protocol.per_subject else ["test"]
    run, completed = open_run_folder(opts, rep, data, groups, strategy, console)
    with run.lock() if chief else contextlib.nullcontext():  # one training process per run folder
        if data.skipped and chief:
            run.write_skipped(data.skipped)
        cfg = train_config(opts, rep)
        n_folds = len(only) if only is not None else len(set(groups))
        console.print(f"training {opts.spec.name} on {rep.representation} {rep.input_shape}, LOSO over "
                      f"{len(set(groups))} subjects ({n_folds} fold(s) in this run), {opts.epochs} epochs, "
                      f"{strategy.num_replicas_in_sync} replica(s)" + ("" if chief else ", as a non-chief worker"))
        fitted = []  # set when the final model trained in a program with the folds

        def save_final(model):
            fit_final(opts, rep, cfg, data, inputs, groups, run, strategy, console, fitted=model)
            fitted.append(True)

        if n_folds:
            run_protocol(opts, rep, cfg, data, inputs, groups, only, run, completed, strategy, console,
                         final=final_indices(opts, groups) if opts.wants_final else None, on_final=save_final)
        if opts.wants_final:
            if not fitted:  # not trained with the folds: alone, here
                fit_final(opts, rep, cfg, data, inputs, groups, run, strategy, console)
        elif chief:
            console.print("no final model in this run (--folds): pool the folds with `mer-keras merge`; fit the "
                          "final model with --folds none", soft_wrap=True)
        if chief:
            run.remove_backups()
    console.print(f"done in {time.perf_counter() - t_start:.0f} s")
    return run.path


def normalised_inputs(inputs: Inputs, data: Dataset, opts: TrainOptions, rep: RepresentationConfig) -> Inputs:
    """The inputs as the run's ``--input-norm`` gives them to training: unchanged, or each database's
    channels moved to the pooled statistics (:func:`mer_keras.preprocess.normalise.normalise_by_database`)."""
    if opts.input_norm in (None, "none"):
        return inputs
    from mer_keras.preprocess.normalise import normalise_by_database

    databases = [r["database"] for r in data.rows]
    return Inputs(normalise_by_database(inputs.x, databases, rep.representation == "flow"), inputs.y)


def load_run_inputs(run: str | Path, console) -> tuple[TrainOptions, RepresentationConfig, Dataset, Inputs, np.ndarray]:
    """Rebuild a finished or interrupted run's data and inputs from its config.json (cache reused).

    Returns:
        (options, representation, dataset, inputs, final) where ``final`` is the (N,) bool mask of
        the records the final model was fitted on (all but a cross-protocol test set).
    Raises:
        MissingFileError: no config.json. RunFolderError: unreadable config, or the data changed.
    """
    from mer_keras.data.protocols import PROTOCOLS

    folder = RunFolder(Path(run))
    config = folder.read_config()
    try:
        opts = options_from_config(config, folder.path / "config.json")
        rep = RepresentationConfig(**config["representation_config"])
    except (KeyError, TypeError) as exc:
        raise RunFolderError(f"{folder.path / 'config.json'}: not a run configuration "
                             f"({type(exc).__name__}: {exc})") from None
    data = load_data(DataRequest.of(opts), console)
    inputs = normalised_inputs(build_dataset_inputs(data, rep, console, cache_dir=opts.cache_dir, workers=opts.workers,
                                                    strict=opts.strict), data, opts, rep)
    if config.get("classes") and list(config["classes"]) != list(data.classes):
        raise RunFolderError(f"{folder.path}: the data's classes {data.classes} "
                             f"differ from the run's {config['classes']}")
    groups = PROTOCOLS[opts.protocol].groups(data.rows, data.test_databases)
    return opts, rep, data, inputs, np.array([g != "test" for g in groups])
