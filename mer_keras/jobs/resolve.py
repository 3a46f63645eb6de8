"""Step *resolve options*: the options given, a recorded run's or config's, the recipe, and the representation
the model and the dataset's row call for, checked before any work.
"""

from __future__ import annotations

import os
from dataclasses import asdict, fields, replace
from pathlib import Path

from mer_keras.data.pipeline import RepresentationConfig
from mer_keras.errors import OptionError, RunFolderError
from mer_keras.jobs.protocol_run import EXECUTION_OPTIONS
from mer_keras.jobs.schema import validate
from mer_keras.jobs.train_options import TrainOptions, options_from_config
from mer_keras.runs import RunFolder
from mer_keras.train.config import TrainConfig


def resume_with(given: TrainOptions) -> TrainOptions:
    """The options of the run ``given.resume`` names, with the execution options given (workers,
    cache, backups, ...: :data:`mer_keras.jobs.protocol_run.EXECUTION_OPTIONS`) applied.

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
