"""``mer-keras train``: the main job (LOSO training, evaluation and export)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer

from mer_keras.cli.common import console, user_errors
from mer_keras.data.database import APEX_POLICIES
from mer_keras.data.datasets import DATASETS
from mer_keras.train.run import PROTOCOLS
from mer_keras.preprocess.flow import FLOW_METHODS
from mer_keras.registry import REPRESENTATIONS, list_models
from mer_keras.train.strategy import STRATEGIES

ModelName = Enum("ModelName", {n: n for n in list_models()}, type=str)
Representation = Enum("Representation", {n: n for n in REPRESENTATIONS}, type=str)
Strategy = Enum("Strategy", {n: n for n in STRATEGIES}, type=str)
DataName = Enum("DataName", {n: n for n in DATASETS}, type=str)
Protocol = Enum("Protocol", {n: n for n in PROTOCOLS}, type=str)
ApexPolicy = Enum("ApexPolicy", {n: n for n in APEX_POLICIES}, type=str)
FlowMethod = Enum("FlowMethod", {n: n for n in FLOW_METHODS}, type=str)


@user_errors
def train(
    model: Annotated[ModelName, typer.Option(help="Architecture from the registry.")] = "learnet",
    data: Annotated[DataName, typer.Option(help="Dataset: the embedded synthetic set, a database, the MEGC2019 "
                                           "composite (root holds CASME2/, SAMM/, SMIC/) or a manifest CSV.")] = "synthetic",
    root: Annotated[Optional[str], typer.Option(help="Database folder (or manifest CSV); default "
                                                "$MER_DATA_ROOT/<DB>.")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Stop at the first bad clip instead of skipping it.")] = False,
    protocol: Annotated[Protocol, typer.Option(help="loso; composite (LOSO on --data composite, per-database "
                                               "metrics too); cross (train on --data, test on --test-data).")] = "loso",
    test_data: Annotated[Optional[str], typer.Option(help="Test database of --protocol cross.")] = None,
    test_root: Annotated[Optional[str], typer.Option(help="Root of the test database.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Processes for preprocessing clips not yet cached.")] = 1,
    apex: Annotated[ApexPolicy, typer.Option(help="Where the sheet gives no apex: midpoint of onset..offset, or "
                                             "spot (frame of largest motion against onset).")] = "midpoint",
    representation: Annotated[Optional[Representation], typer.Option(
        help="Input representation; default: the model's own (LEARNet: dynamic_image).")] = None,
    variant: Annotated[Optional[str], typer.Option(help="Architecture variant: learnet paper|released, htnet paper|small.")] = None,
    epochs: Annotated[int, typer.Option(min=1, help="Fixed epochs per fold (no early stopping on test data).")] = 80,
    batch_size: Annotated[int, typer.Option(min=1, help="Global batch size.")] = 32,
    lr: Annotated[Optional[float], typer.Option(min=0.0, help="Adam learning rate (default: the model's, see `mer-keras models`).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic data and of training.")] = 0,
    out: Annotated[str, typer.Option(help="Parent folder of the run folder.")] = "runs",
    subjects: Annotated[int, typer.Option(min=2, help="Synthetic pseudo-subjects.")] = 12,
    clips: Annotated[int, typer.Option(min=1, help="Synthetic clips per subject.")] = 20,
    faces: Annotated[Optional[str], typer.Option(help="Folder of extra face photos for the synthetic set.")] = None,
    folds: Annotated[Optional[str], typer.Option(help=(
        "Comma-separated LOSO test subjects to run (default: all); `none`: no fold, only the final model. "
        "Pool runs with `mer-keras merge`."))] = None,
    backup_minutes: Annotated[float, typer.Option(min=0.0, help=(
        "Back up the fold in progress (weights, optimizer, epoch) when this many minutes have passed since the "
        "last backup, at the end of an epoch; 0: every epoch. --resume continues from it."))] = 1.0,
    final: Annotated[Optional[bool], typer.Option("--final/--no-final", help=(
        "Fit the final model on all subjects (default: only when every fold runs).")) ] = None,
    export: Annotated[bool, typer.Option("--export/--no-export", help="Write TFLite fp32 and int8 models.")] = True,
    strategy: Annotated[Strategy, typer.Option(help="tf.distribute strategy.")] = "auto",
    cpu_replicas: Annotated[int, typer.Option(min=1, help="Split the CPU into N logical devices (with "
                                              "--strategy mirrored: N replicas without a GPU).")] = 1,
    augment: Annotated[bool, typer.Option("--augment/--no-augment", help="Random horizontal flips.")] = True,
    class_weight: Annotated[bool, typer.Option("--class-weight/--no-class-weight",
                                               help="Balanced class weights from the training folds.")] = True,
    flow_method: Annotated[FlowMethod, typer.Option(help="Optical flow method (flow representation).")] = "tvl1",
    cache_dir: Annotated[Optional[str], typer.Option(help="Cache folder (default $MER_CACHE_DIR or ~/.cache/mer_keras).")] = None,
    aux_weight: Annotated[Optional[list[str]], typer.Option(
        help="Loss weight of an auxiliary output, OUTPUT=WEIGHT (repeatable), e.g. proposal=0.5, au=1, "
             "au_cluster=0.05.")] = None,
    init_from: Annotated[Optional[str], typer.Option(
        help="Run folder or .keras file whose weights start training (layers matched by name and shape).")] = None,
    freeze_until: Annotated[Optional[str], typer.Option(
        help="With --init-from: freeze this layer and every layer before it.")] = None,
    resume: Annotated[Optional[str], typer.Option(
        help="Continue an interrupted run folder: its recorded options, finished folds kept, the fold in "
             "progress continued from its last finished epoch.")] = None,
    deterministic: Annotated[bool, typer.Option("--deterministic/--no-deterministic", help=(
        "TensorFlow op determinism and seeded dropout: the same --seed gives the same metrics (on GPU some "
        "ops are slower or have no deterministic kernel).")) ] = True,
    mixed_precision: Annotated[bool, typer.Option("--mixed-precision", help=(
        "Train under mixed_float16 (a GPU speed-up; outputs stay float32, saved and exported models are "
        "float32).")) ] = False,
) -> None:
    """Train and evaluate a model under leave-one-subject-out, then fit on all subjects and export.

    With no dataset argument it runs on the embedded synthetic micro-expressions (real face
    photos, synthetic facial actions). The run folder is printed as the last line.
    """
    from mer_keras.train.run import RunOptions, train_run
    from mer_keras.train.strategy import split_cpu

    if resume:
        from mer_keras.train.run import resume_options

        recorded = resume_options(resume)
        cpu_replicas = recorded.cpu_replicas  # the finished folds ran with this many replicas
        console.print("--resume: every other option is taken from the run's config.json", soft_wrap=True)
    if cpu_replicas > 1:
        split_cpu(cpu_replicas)
    weights = {}
    for item in aux_weight or []:
        key, sep, value = item.partition("=")
        try:
            weights[key.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not key.strip():
            raise typer.BadParameter(f"--aux-weight {item!r}: expected OUTPUT=WEIGHT, e.g. proposal=0.5")

    opts = RunOptions(model=str(getattr(model, "value", model)), data=str(getattr(data, "value", data)),
                      root=root, strict=strict, workers=workers, protocol=str(getattr(protocol, "value", protocol)),
                      test_data=test_data, test_root=test_root, apex=str(getattr(apex, "value", apex)),
                      representation=getattr(representation, "value", representation), variant=variant,
                      epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, out=out, subjects=subjects,
                      clips=clips, faces=faces, folds=[f.strip() for f in folds.split(",")] if folds else None,
                      export=export, strategy=str(getattr(strategy, "value", strategy)), augment=augment,
                      class_weight=class_weight, flow_method=str(getattr(flow_method, "value", flow_method)),
                      cache_dir=cache_dir, aux_weights=weights or None, init_from=init_from,
                      freeze_until=freeze_until, resume=resume, cpu_replicas=cpu_replicas,
                      deterministic=deterministic, mixed_precision=mixed_precision, final=final,
                      backup_minutes=backup_minutes)
    run = train_run(opts, console)
    console.print(str(run), highlight=False, soft_wrap=True)
