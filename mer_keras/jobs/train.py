"""``mer-keras train``, the main job: resolve options -> load data -> build inputs -> protocol folds
-> pooled report -> final fit -> export, into one run folder (:mod:`mer_keras.runs`).

Its options are :class:`mer_keras.jobs.train_options.TrainOptions` (the job's schema); the final
model step is :mod:`mer_keras.jobs.final_model`.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from mer_keras.jobs.final_model import final_indices, fit_final
from mer_keras.jobs.inputs import DataRequest, build_dataset_inputs, check_trainable, load_data
from mer_keras.jobs.protocol_run import open_run_folder, run_protocol
from mer_keras.jobs.resolve import resolve_options, resume_with, train_config, with_config
from mer_keras.jobs.run_inputs import normalised_inputs
from mer_keras.jobs.schema import validate
from mer_keras.jobs.train_options import TrainOptions
from mer_keras.jobs.transfer_checks import check_transfer, probe_model


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
    from mer_keras.jobs.outputs import check_outputs  # every output checked before any work
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


