"""``mer-keras tune``: LOSO whose training recipe is chosen for each test subject by a nested
leave-subjects-out loop on its training subjects only (:mod:`mer_keras.train.nested`).

Steps: resolve options -> load data -> inputs -> run folder -> inner scores of every recipe of
the search space (``inner/recipe-<r>.json``, one file per recipe as it ends) -> the choice of
each outer group (``selection.json``) -> the LOSO folds, each with its group's choice ->
pooled report -> the final model with the choice of the inner loop over all groups. A killed
job resumes with ``--resume RUN``: finished recipes and folds are not trained again.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

from mer_keras import atomic
from mer_keras.errors import OptionError, RunFolderError
from mer_keras.jobs.schema import from_config, option, validate
from mer_keras.jobs.train_options import TrainOptions
from mer_keras.train.nested import (
    SEARCHABLE,
    check_group_count,
    check_space,
    choose,
    parse_space,
    recipes,
    score_recipes,
    subject_groups,
)


def _parse_space(items) -> dict | None:
    return parse_space(items) if items else None


#: The search space when ``--space`` is not given: the model's learning rate halved, as it is and
#: doubled; translations of 0 or 2 px (flow images); 40, 80 or 120 epochs (scored from checkpoints of one fit).
DEFAULT_SPACE = {"lr": ["x0.5", "x1", "x2"], "shift": [0, 2], "epochs": [40, 80, 120]}


@dataclass
class TuneOptions(TrainOptions):
    """``mer-keras train``'s options plus the search space and the number of subject groups."""

    space: dict | None = option(None, "Search space, KEY=V1,V2,... (repeatable); keys: " + ", ".join(SEARCHABLE)
                                + ". Default: lr = the model's rate x 0.5, 1, 2; shift = 0, 2; epochs = 40, 80, 120.",
                                cli_type=list[str], parse=_parse_space, check=check_space)
    groups: int = option(5, "Subject groups of the nested loop: each test subject's recipe is chosen by leave-one-"
                            "group-out over the groups that do not hold it.", min=3, max=1_000)
    selection_from: str | None = option(None, "Reuse the choices recorded by another tune run on the same data, "
                                              "model and space (its selection.json) instead of running the inner "
                                              "loop, e.g. to train other seeds of the same selection.")


#: config.json keys a run whose selection is reused must share with the new run.
SAME_SELECTION = ("model", "data", "root", "protocol", "classes", "loso_subjects", "representation_config", "space",
                  "groups", "variant", "batch_size", "augment", "class_weight", "shift", "lr", "epochs", "init_from",
                  "weight_decay", "ema", "label_smoothing", "mixup", "cutmix", "sampling", "input_norm",
                  "freeze_until", "aux_weights")


def reused_selection(source: str | Path, config: dict) -> dict:
    """The selection.json of the tune run ``source``, checked to fit the run described by ``config``.

    The choices were made by the source's inner loops (with the source's seed), on training
    subjects only, so outer fits with another seed may reuse them honestly: nothing of a test
    subject entered them.

    Raises:
        MissingFileError: ``source`` is not a run folder. RunFolderError: no readable selection.json.
        OptionError: the source differs in data, model, space or base recipe (the key named).
    """
    from mer_keras.runs import RunFolder

    folder = RunFolder(Path(source))
    recorded = folder.read_config("--selection-from: ")
    for key in SAME_SELECTION:
        if recorded.get(key) != config.get(key):
            raise OptionError(f"--selection-from {source}: its {key} is {recorded.get(key)!r}, this run's is "
                              f"{config.get(key)!r}; a selection is reused only for the same data, model and space")
    path = folder.path / "selection.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise RunFolderError(f"{path}: no readable selection ({type(exc).__name__}); the source tune run must have "
                             "finished its inner loop") from None


def default_space(lr: float, regions: str | None = None) -> dict[str, list]:
    """:data:`DEFAULT_SPACE` with the learning rates made absolute from the model's ``lr``; without
    ``shift`` for region layouts (a translation would move one region's pixels into its neighbour's tile)."""
    space = {"lr": [lr * float(v[1:]) for v in DEFAULT_SPACE["lr"]], "shift": list(DEFAULT_SPACE["shift"]),
             "epochs": list(DEFAULT_SPACE["epochs"])}
    if regions:
        del space["shift"]
    return space


def _read_inner(run_path: Path, n_recipes: int) -> dict[int, list[dict]]:
    done = {}
    for r in range(n_recipes):
        path = run_path / "inner" / f"recipe-{r}.json"
        if path.is_file():
            try:
                done[r] = json.loads(path.read_text())["rows"]
            except (json.JSONDecodeError, KeyError) as exc:
                raise RunFolderError(f"{path}: not an inner score file ({exc}); delete it to score that recipe "
                                     "again") from None
    return done


def tune(opts: TuneOptions, console=None) -> Path:
    """Run nested-selection LOSO and return the run folder.

    The run folder is a train run's (config.json, folds/, results.json, predictions.csv, model.keras,
    exports, metadata.json) plus ``inner/recipe-<r>.json`` (every inner score) and ``selection.json``:
    the subject groups, each group's scores and choice, each test subject's recipe, and the final
    model's. results.json repeats the choices under ``selection``.

    Raises:
        OptionError: a protocol without per-subject folds, a distribution strategy, or a bad space.
        MerKerasError: bad options, data or run folder (named).
    """
    from rich.console import Console

    from mer_keras.jobs.final_model import fit_final
    from mer_keras.jobs.inputs import DataRequest, build_dataset_inputs, check_trainable, load_data
    from mer_keras.jobs.protocol_run import open_run_folder, run_protocol
    from mer_keras.jobs.resolve import train_config
    from mer_keras.jobs.run_inputs import normalised_inputs
    from mer_keras.train.strategy import get_strategy

    console = console or Console()
    t_start = time.perf_counter()
    opts, rep, protocol = resolve_tune_options(opts, console)
    strategy = get_strategy(opts.strategy)
    data = load_data(DataRequest.of(opts), console)
    check_trainable(data, opts.root)
    if opts.init_from:
        from mer_keras.jobs.transfer_checks import check_transfer

        check_transfer(opts, rep, data, console)  # a source fitted on these subjects would leak them
    subjects = protocol.groups(data.rows, data.test_databases)
    group_of = subject_groups(subjects, opts.groups)
    reused = None
    if opts.selection_from and not opts.resume:  # checked before anything is built or written
        from dataclasses import asdict

        reused = reused_selection(opts.selection_from, {
            **asdict(opts), "representation_config": asdict(rep), "dataset": data.name, "classes": data.classes,
            "loso_subjects": sorted(set(subjects))})
        if opts.wants_final and "final" not in reused["choice"]:
            raise OptionError(f"--selection-from {opts.selection_from}: it made no choice for a final model (a "
                              "--no-final run); give --no-final here too")
    inputs = normalised_inputs(build_dataset_inputs(data, rep, console, cache_dir=opts.cache_dir,
                                                    workers=opts.workers, strict=opts.strict), data, opts, rep)
    run, completed = open_run_folder(opts, rep, data, subjects, strategy, console)
    with run.lock("tuning"):  # one training process per run folder
        if data.skipped:
            run.write_skipped(data.skipped)
        base = train_config(opts, rep)
        outers = [*sorted(set(group_of.values())), *([None] if opts.wants_final else [])]
        if opts.selection_from:
            selection = {**(reused or reused_selection(opts.selection_from, run.read_config())),
                         "reused_from": opts.selection_from}
            console.print(f"choices reused from {opts.selection_from} (no inner loop)", soft_wrap=True)
        else:
            selection = inner_selection(opts, base, data, inputs, subjects, group_of, outers, run, strategy, console)
        chosen = {a: selection["choice"]["final" if a is None else str(a)] for a in outers}
        per_subject = selection["per_subject"]
        atomic.write_json(run.path / "selection.json", selection)
        for a in outers:
            c = chosen[a]
            console.print(f"group {'final' if a is None else a}: {c['recipe'] or 'base recipe'}, {c['epochs']} epochs "
                          f"(inner UF1 {c['uf1']:.3f}, UAR {c['uar']:.3f} on {c['n']} clips)", soft_wrap=True)

        def cfg_of(subject):
            return replace(base, **per_subject[subject])

        run_protocol(opts, rep, base, data, inputs, subjects, None, run, completed, strategy, console, cfg_of=cfg_of,
                     extra_info={"selection": {"method": f"nested leave-one-group-out, {opts.groups} subject groups",
                                               "space": opts.space, "per_subject": per_subject,
                                               "final": selection["choice"].get("final")}})
        if opts.wants_final:
            final = chosen[None]
            final_opts = replace(opts, **final["recipe"], epochs=final["epochs"])
            fit_final(final_opts, rep, replace(base, **final["recipe"], epochs=final["epochs"]), data, inputs, subjects,
                      run, strategy, console)
        run.remove_backups()
    console.print(f"done in {time.perf_counter() - t_start:.0f} s")
    return run.path


def resolve_tune_options(opts: TuneOptions, console):
    """Step *resolve options* of ``tune``: validated, a resumed run's recorded ones, the protocol and
    the representation resolved, the outputs checked and the search space completed, before any work.

    Returns:
        (options with their ``space``, :class:`~mer_keras.preprocess.representation.RepresentationConfig`,
        the protocol object).
    Raises:
        OptionError: ``--config``, ``--folds``, a protocol without per-subject folds, a distribution
            strategy, a recipe setting a searched option, shifts of a region-tiled input, or more
            subject groups than subjects. RunFolderError: ``--resume`` of a train run.
    """
    from mer_keras.data.datasets import dataset_spec
    from mer_keras.data.protocols import PROTOCOLS
    from mer_keras.jobs.outputs import check_outputs
    from mer_keras.jobs.resolve import refuse_finished, resolve_options
    from mer_keras.runs import RunFolder

    validate(opts)  # every option, before any work (the recorded ones of --resume below too)
    if opts.config:
        raise OptionError("--config re-runs a train run; tune takes its options on the command line (and --resume)")
    if opts.resume:
        config = RunFolder(Path(opts.resume)).read_config("cannot resume ")
        if "space" not in config:
            raise RunFolderError(f"{opts.resume} was made by mer-keras train, not tune: resume it with train --resume")
        opts = from_config(TuneOptions, config, Path(opts.resume) / "config.json", resume=opts.resume)
        refuse_finished(RunFolder(Path(opts.resume)), opts.wants_final)
        console.print(f"resuming {opts.resume} with its recorded options", soft_wrap=True)
    if opts.folds:
        raise OptionError("--folds: tune runs every LOSO fold (each test subject's choice comes from its own group's "
                          "inner loop); use train --folds with a recipe")
    protocol = PROTOCOLS[opts.protocol]
    if not protocol.per_subject:
        raise OptionError(f"--protocol {opts.protocol}: tune needs per-subject folds (loso or composite)")
    opts, rep = resolve_options(opts)
    check_outputs(opts.resume or opts.out, opts.cache_dir, "--resume" if opts.resume else "--out")
    if opts.strategy not in ("auto", "default"):
        raise OptionError(f"--strategy {opts.strategy}: tune trains on one device (its inner fits are small)")
    space = opts.space or default_space(opts.lr, rep.regions)
    if opts.recipe:  # the recipe's lr is the centre of the default lr range; other searched keys would be dropped
        searched = set(space) & (set(opts.spec.recipe(opts.recipe)) - {"lr"})
        if searched:
            raise OptionError(f"--recipe {opts.recipe} sets {', '.join(sorted(searched))}, which tune searches: give "
                              "--space without them, or leave out --recipe")
    if rep.regions and any(v for v in space.get("shift", ())) or (rep.regions and opts.shift):
        raise OptionError(f"--space shift / --shift: {opts.model}'s input is {rep.regions} regions tiled 2 x 2; a "
                          "translation would move one region's pixels into its neighbour's tile")
    opts = replace(opts, space=space)
    if dataset_spec(opts.data).generated:  # its subject count is an option: checked before the set is rendered
        check_group_count(opts.groups, opts.subjects)
    return opts, rep, protocol


def inner_selection(opts: TuneOptions, base, data, inputs, subjects, group_of: dict, outers: list, run, strategy,
                    console) -> dict:
    """Step *select*: every recipe of ``opts.space`` scored by the inner loop of each outer group (and
    of the final model, ``None`` in ``outers``), resumed from ``inner/recipe-<r>.json``; the best
    recipe and epoch count chosen per group (:func:`mer_keras.train.nested.choose`).

    Returns:
        The selection: {"groups", "space", "choice" ({group or "final": choice}), "per_subject"
        ({subject: recipe with epochs}), "inner_scores"}.
    """
    from mer_keras.jobs.inputs import completed_count, progress_bar
    from mer_keras.train.callbacks import ProgressCallback

    space = opts.space
    all_recipes = recipes(space)
    epochs = sorted(space.get("epochs") or [base.epochs])
    fits = len(all_recipes) * sum(opts.groups - (a is not None) for a in outers)
    console.print(f"nested selection: {len(all_recipes)} recipe(s) x epochs {epochs}, {opts.groups} subject "
                  f"groups; {fits} inner fits", soft_wrap=True)

    def save(r, recipe, rows):
        atomic.write_json(run.path / "inner" / f"recipe-{r}.json", {"recipe": recipe, "rows": rows})

    with progress_bar(console) as prog:
        todo = len(all_recipes) - len(_read_inner(run.path, len(all_recipes)))
        task = prog.add_task("inner fold-epochs", total=todo * fits // max(len(all_recipes), 1) * max(epochs), info="")

        def callbacks(group):
            prog.update(task, info=", ".join(f.name for f in group[:2]) + (" ..." if len(group) > 2 else ""))
            return [ProgressCallback(prog, task, folds=len(group), base=completed_count(prog, task))]

        scores = score_recipes(inputs.x, inputs.y, subjects, data.classes, base, space, group_of, outers,
                               strategy, fold_callbacks=callbacks, on_recipe_end=save,
                               done=_read_inner(run.path, len(all_recipes)),
                               aus=data.aus if opts.spec.aux_losses else None)
    rows = [row for r in range(len(all_recipes)) for row in scores[r]]
    chosen = {a: choose([row for row in rows if row["outer"] == a]) for a in outers}
    per_subject = {s: {**chosen[group_of[s]]["recipe"], "epochs": chosen[group_of[s]]["epochs"]}
                   for s in sorted(set(subjects))}
    return {"groups": {s: group_of[s] for s in sorted(group_of)}, "space": space,
            "choice": {("final" if a is None else str(a)): chosen[a] for a in outers},
            "per_subject": per_subject, "inner_scores": rows}
