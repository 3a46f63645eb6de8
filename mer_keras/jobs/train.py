"""``mer-keras train``, the main job: resolve options -> load data -> build inputs -> protocol folds
-> pooled report -> final fit -> export, into one run folder (:mod:`mer_keras.runs`).

:class:`TrainOptions` is the job's schema: every option, its default and its help, once. The
command line is built from it (:mod:`mer_keras.cli.train`), and so is ``config.json``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from mer_keras.data.pipeline import RepresentationConfig
from mer_keras.data.records import Dataset, Sample
from mer_keras.data.synthetic.config import SyntheticConfig
from mer_keras.errors import OptionError, RunFolderError
from mer_keras.jobs.inputs import DataRequest, Inputs, build_dataset_inputs, load_data, progress_bar
from mer_keras.jobs.schema import from_config, option, validate
from mer_keras.runs import RunFolder, new_run, run_dir_name
from mer_keras.train.config import TrainConfig

#: The training library's defaults (epochs, batch, seed, ...) and the synthetic set's (subjects,
#: clips): the options below take them from there.
_TRAINING = TrainConfig()
_SYNTHETIC = SyntheticConfig()


def _models():
    from mer_keras.registry import list_models

    return list_models()


def _datasets():
    from mer_keras.data.datasets import DATASETS

    return DATASETS


def _protocols():
    from mer_keras.data.protocols import PROTOCOLS

    return tuple(PROTOCOLS)


def _apex_policies():
    from mer_keras.data.database import APEX_POLICIES

    return APEX_POLICIES


def _representations():
    from mer_keras.preprocess.representation import REPRESENTATIONS

    return REPRESENTATIONS


def _strategies():
    from mer_keras.train.strategy import STRATEGIES

    return STRATEGIES


def _flow_methods():
    from mer_keras.preprocess.flow import FLOW_METHODS

    return FLOW_METHODS


def parse_folds(value: str | None) -> list[str] | None:
    """``--folds sub01,sub02`` -> ["sub01", "sub02"] (None: every fold)."""
    return [f.strip() for f in value.split(",")] if value else None


def parse_aux_weights(items: Sequence[str] | None) -> dict | None:
    """``--aux-weight proposal=0.5`` (repeatable) -> {"proposal": 0.5}.

    Raises:
        OptionError: an item that is not OUTPUT=WEIGHT with a number.
    """
    weights = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        try:
            weights[key.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not key.strip():
            raise OptionError(f"--aux-weight {item!r}: expected OUTPUT=WEIGHT, e.g. proposal=0.5")
    return weights or None


@dataclass
class TrainOptions:
    """Every option of ``mer-keras train`` (recorded as ``config.json``).

    Defaults live here, except the per-model ones (learning rate, representation), which the
    model registry holds (``None`` here means "the model's").
    """

    model: str = option(_TRAINING.model, "Architecture from the registry.", choices=_models)
    data: str = option("synthetic", "Dataset: the embedded synthetic set, a database, the MEGC2019 composite (root "
                       "holds CASME2/, SAMM/, SMIC/) or a manifest CSV.", choices=_datasets)
    root: str | None = option(None, "Database folder (or manifest CSV); default $MER_DATA_ROOT/<DB>.")
    strict: bool = option(False, "Stop at the first bad clip instead of skipping it.")
    protocol: str = option("loso", "loso; composite (LOSO on --data composite, per-database metrics too); cross "
                           "(train on --data, test on --test-data).", choices=_protocols)
    test_data: str | None = option(None, "Test database of --protocol cross.")
    test_root: str | None = option(None, "Root of the test database.")
    apex: str = option("midpoint", "Where the sheet gives no apex: midpoint of onset..offset, or spot (frame of "
                       "largest motion against onset).", choices=_apex_policies)
    workers: int = option(1, "Processes for preprocessing clips not yet cached.", min=1)
    representation: str | None = option(None, "Input representation; default: the model's own (LEARNet: "
                                        "dynamic_image).", choices=_representations)
    variant: str | None = option(None, "Architecture variant: learnet paper|released, htnet paper|small.")
    epochs: int = option(_TRAINING.epochs, "Fixed epochs per fold (no early stopping on test data).", min=1)
    batch_size: int = option(_TRAINING.batch_size, "Global batch size.", min=1)
    lr: float | None = option(None, "Adam learning rate (default: the model's, see `mer-keras models`).", above=0.0)
    seed: int = option(_TRAINING.seed, "Seed of the synthetic data and of training.")
    out: str = option("runs", "Parent folder of the run folder.")
    subjects: int = option(_SYNTHETIC.subjects, "Synthetic pseudo-subjects.", min=2)
    clips: int = option(_SYNTHETIC.clips_per_subject, "Synthetic clips per subject.", min=1)
    faces: str | None = option(None, "Folder of extra face photos for the synthetic set.")
    folds: list[str] | None = option(None, "Comma-separated LOSO test subjects to run (default: all); `none`: no "
                                     "fold, only the final model. Pool runs with `mer-keras merge`.",
                                     cli_type=str, parse=parse_folds)
    export: bool = option(True, "Write TFLite fp32 and int8 models.", secondary="--no-export")
    strategy: str = option("auto", "tf.distribute strategy.", choices=_strategies)
    augment: bool = option(_TRAINING.augment, "Random horizontal flips.", secondary="--no-augment")
    class_weight: bool = option(_TRAINING.class_weight, "Balanced class weights from the training folds.",
                                secondary="--no-class-weight")
    flow_method: str = option("tvl1", "Optical flow method (flow representation).", choices=_flow_methods)
    cache_dir: str | None = option(None, "Cache folder (default $MER_CACHE_DIR or ~/.cache/mer_keras).")
    aux_weights: dict | None = option(None, "Loss weight of an auxiliary output, OUTPUT=WEIGHT (repeatable), e.g. "
                                      "proposal=0.5, au=1, au_cluster=0.05.", flag="--aux-weight",
                                      cli_type=list[str], parse=parse_aux_weights)
    init_from: str | None = option(None, "Run folder or .keras file whose weights start training (layers matched "
                                   "by name and shape).")
    freeze_until: str | None = option(None, "With --init-from: freeze this layer and every layer before it.")
    resume: str | None = option(None, "Continue an interrupted run folder: its recorded options, finished folds "
                                "kept, the fold in progress continued from its last finished epoch.")
    cpu_replicas: int = option(1, "Split the CPU into N logical devices (with --strategy mirrored: N replicas "
                               "without a GPU).", min=1)
    deterministic: bool = option(_TRAINING.deterministic, "TensorFlow op determinism and seeded dropout: "
                                 "the same --seed gives the "
                                 "same metrics (on GPU some ops are slower or have no deterministic kernel).",
                                 secondary="--no-deterministic")
    mixed_precision: bool = option(_TRAINING.mixed_precision, "Train under mixed_float16 "
                                   "(a GPU speed-up; outputs stay float32, saved "
                                   "and exported models are float32).")
    final: bool | None = option(None, "Fit the final model on all subjects (default: only when every fold runs).",
                                secondary="--no-final")
    backup_minutes: float = option(_TRAINING.backup_minutes, "Back up the fold in progress "
                                   "(weights, optimizer, epoch) when this many "
                                   "minutes have passed since the last backup, at the end of an epoch; 0: every "
                                   "epoch. --resume continues from it.", min=0.0)

    @property
    def wants_final(self) -> bool:
        """Whether the run fits the final model: ``final``; by default when it runs every fold, or no
        fold (``--folds none``), not when it runs some of them."""
        if self.final is not None:
            return self.final
        return not self.folds or list(self.folds) == ["none"]


def options_from_config(config: dict, **overrides) -> TrainOptions:
    """:class:`TrainOptions` from a run's config.json (keys that are not options are ignored).

    A run recorded before the synthetic set was a named dataset has ``data: null``: it is ``synthetic``.
    """
    opts = from_config(TrainOptions, config, **overrides)
    return replace(opts, data=opts.data or "synthetic")


def resume_options(run: str | Path) -> TrainOptions:
    """The options of an interrupted run, from its config.json (``resume`` set to the folder).

    Raises:
        MissingFileError: no config.json. RunFolderError: unreadable, or the run already finished.
    """
    folder = RunFolder(Path(run))
    opts = options_from_config(folder.read_config("cannot resume "), resume=str(run))
    if folder.complete or (not opts.wants_final and (folder.path / "results.json").exists()):
        raise RunFolderError(f"{run} is complete (metadata.json, or results.json of a --folds run, is written last); "
                             "nothing to resume")
    return opts


def resolve_options(opts: TrainOptions) -> tuple[TrainOptions, RepresentationConfig]:
    """Step *resolve options*: check every option, fill the model's defaults; nothing is built.

    Returns:
        (the options as the run records them, with ``lr`` set; the input representation).
    Raises:
        OptionError, UnknownNameError: a bad value or combination (named). MissingFileError:
            ``--init-from`` does not exist.
    """
    from mer_keras.registry import get_spec

    validate(opts)
    spec = get_spec(opts.model)
    if opts.lr is None:
        opts = replace(opts, lr=spec.learning_rate)  # recorded in config.json as used
    rep = spec.data_config(opts.representation, opts.flow_method)
    spec.check_variant(opts.variant)
    if opts.freeze_until and not opts.init_from:
        raise OptionError("--freeze-until needs --init-from (freezing random weights is never wanted)")
    if opts.init_from:
        from mer_keras.models.io import resolve_model_path

        resolve_model_path(opts.init_from)  # a missing source fails before any work
    if opts.aux_weights:
        from mer_keras.train.targets import aux_losses_for

        aux_losses_for(spec.aux_losses, opts.aux_weights)
    return opts, rep


def train_config(opts: TrainOptions, rep: RepresentationConfig) -> TrainConfig:
    """The training library's view of the options (:class:`mer_keras.train.config.TrainConfig`)."""
    return TrainConfig(model=opts.model, epochs=opts.epochs, batch_size=opts.batch_size, lr=opts.lr, seed=opts.seed,
                       augment=opts.augment, class_weight=opts.class_weight,
                       model_options={"variant": opts.variant} if opts.variant else {},
                       flow_input=rep.representation == "flow", aux_weights=dict(opts.aux_weights or {}),
                       init_from=opts.init_from, freeze_until=opts.freeze_until, deterministic=opts.deterministic,
                       mixed_precision=opts.mixed_precision, backup_minutes=opts.backup_minutes)


def check_init_source(init_from: str, dataset: str, protocol: str, console) -> None:
    """Refuse transfer learning from a final model fitted on the data being evaluated.

    A run's ``model.keras`` is fitted on every subject, so starting LOSO on the same dataset from
    it puts each test subject in the initial weights. The source's ``metadata.json`` (beside the
    model, or in the run folder) names its dataset.

    Raises:
        OptionError: the source was trained on ``dataset`` (or, for a composite, on a part of it).
        ModelFileError: its metadata.json is not JSON.
    """
    import json

    from mer_keras.errors import ModelFileError

    src = Path(init_from)
    meta_path = (src if src.is_dir() else src.parent) / "metadata.json"
    if not meta_path.is_file():
        console.print(f"[yellow]note:[/] {init_from} has no metadata.json beside it: make sure it never saw the "
                      "test subjects of this run", soft_wrap=True)
        return
    try:
        source = json.loads(meta_path.read_text()).get("dataset")
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{meta_path}: not readable JSON ({exc})") from None
    parts = {dataset, *dataset.split("-to-")}
    if source in parts or (dataset == "composite" and source in ("casme2", "samm", "smic")):
        raise OptionError(f"--init-from {init_from} was trained on {source}, which holds the test subjects of this "
                          f"{protocol} run on {dataset}: its weights would leak them. Pre-train on other data.")


def check_transfer(opts: TrainOptions, rep: RepresentationConfig, data: Dataset, console) -> None:
    """Step *check transfer*: the ``--init-from`` source must not hold the test subjects, and its
    layers must match (checked on the model before any fold)."""
    from mer_keras.registry import create_model
    from mer_keras.train.transfer import initialise_from

    check_init_source(opts.init_from, data.name, opts.protocol, console)
    probe = create_model(opts.model, len(data.classes), input_shape=rep.input_shape,
                         **({"variant": opts.variant} if opts.variant else {}))
    report = initialise_from(probe, opts.init_from, opts.freeze_until)  # fails early, before any fold
    console.print(f"--init-from {opts.init_from}: {len(report['copied'])} layers copied, "
                  f"{len(report['skipped'])} left at their initialisation "
                  f"({', '.join(report['skipped'][:6])}{', ...' if len(report['skipped']) > 6 else ''}), "
                  f"{report['frozen']} frozen", soft_wrap=True)


def window_from_samples(samples: Sequence[Sample]) -> dict | None:
    """The sliding window a deployed model should use, from the clips it was trained on.

    Returns:
        {"seconds", "frames", "fps", "stride_frames"}: the median onset..offset length of the
        training clips in frames, in seconds at their frame rate (``None`` when the data gives no
        frame rate, e.g. a manifest of frame folders), that rate, and a stride of half a window;
        ``None`` when no clip has frames (precomputed images only). The runner (``edge.run``)
        rescales ``seconds`` to its video's frame rate, or uses ``frames`` when seconds is None.
    """
    if not samples:
        return None
    frames = max(2, int(round(float(np.median([s.offset - s.onset + 1 for s in samples])))))
    rates = [s.fps for s in samples if s.fps and s.fps > 0]
    if not rates:
        return {"seconds": None, "frames": frames, "fps": None, "stride_frames": max(1, frames // 2)}
    seconds = float(np.median([(s.offset - s.onset + 1) / s.fps for s in samples if s.fps and s.fps > 0]))
    fps = float(np.median(rates))
    frames = max(2, int(round(seconds * fps)))
    return {"seconds": round(seconds, 4), "frames": frames, "fps": fps, "stride_frames": max(1, frames // 2)}


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
        run.write_config({**asdict(opts), "representation_config": asdict(rep), "dataset": data.name,
                          "classes": data.classes, "loso_subjects": sorted(set(groups))})
    return run, {}


def run_protocol(opts: TrainOptions, rep: RepresentationConfig, cfg, data: Dataset, inputs: Inputs,
                 groups: Sequence[str], only: list[str] | None, run: RunFolder, completed: dict, strategy,
                 console) -> None:
    """Step *protocol folds*: train and test every fold (finished ones reused), write each fold file as
    it ends, then the protocol's pooled report (results.json, predictions.csv, confusion matrix)."""
    from mer_keras.data.protocols import PROTOCOLS
    from mer_keras.registry import get_spec
    from mer_keras.train.callbacks import ProgressCallback
    from mer_keras.train.folds import run_folds
    from mer_keras.train.strategy import is_chief

    protocol = PROTOCOLS[opts.protocol]
    chief = is_chief(strategy)
    classes, keys, rows, y = data.classes, data.keys, data.rows, inputs.y
    folds = protocol.folds(groups, only=only)
    aus = aux_aus(data) if get_spec(opts.model).aux_losses else None
    with progress_bar(console) as prog:
        fold_task = prog.add_task("LOSO folds", total=len(folds), info="")
        epoch_task = prog.add_task("epochs", total=opts.epochs, info="")

        def callbacks(fold):
            prog.reset(epoch_task, total=opts.epochs)
            prog.update(fold_task, info=f"test subject {fold.name}")
            return [ProgressCallback(prog, epoch_task)]

        def fold_end(fold, p, row):
            if chief:
                run.write_fold(fold.name, classes, [keys[i] for i in fold.test], [classes[y[i]] for i in fold.test],
                               p, row)
            prog.update(fold_task, advance=1)

        prog.update(fold_task, advance=len([f for f in folds if f.name in completed]))
        result = run_folds(inputs.x, y, folds, classes, cfg, strategy, fold_callbacks=callbacks, on_fold_end=fold_end,
                           aus=aus, completed=completed, backup_root=run.backup_root)
    if chief:
        report = protocol.report(y, result["probabilities"], classes, [r["database"] for r in rows])
        info = {"model": opts.model, "dataset": data.name, "protocol": opts.protocol,
                "representation": rep.representation, "counts": data.counts, "skipped": len(data.skipped)}
        run.write_results(info, report, rows, result["probabilities"], result["folds"],
                          title=f"{opts.model} LOSO, UF1 {report['overall']['uf1']:.3f}")
        print_report(report, console)


def print_report(report: dict, console) -> None:
    """The pooled figures, and per database when there are several."""
    m = report["overall"]
    console.print(f"LOSO pooled over {report['n_samples']} clips: accuracy {m['accuracy']:.3f}  "
                  f"UF1 {m['uf1']:.3f}  UAR {m['uar']:.3f}")
    for db, m in report["per_database"].items():
        console.print(f"  {db:<10} n={m['n']:<4} accuracy {m['accuracy']:.3f}  UF1 {m['uf1']:.3f}  UAR {m['uar']:.3f}")


def aux_aus(data: Dataset) -> list:
    """Per record its AUs (AU heads): the coding sheet's for clips, none for precomputed images."""
    return [s.aus for s in data.samples] + [() for _ in data.images]


#: Largest accepted |p_tflite - p_keras| for the float32 export (issue #2 acceptance).
FP32_TOLERANCE = 1e-4


def export_tflite(model, run: Path, x_train: np.ndarray, y: np.ndarray, classes: Sequence[str]) -> dict:
    """Write model_fp32.tflite and model_int8.tflite and check them against Keras on ``x_train``.

    (``mer-keras export`` writes the other formats and verifies on held-out inputs.)

    Returns:
        {filename: {"format", "sha256", "bytes", "seconds", "quantization", "float_ops", "parity"}};
        the fp32 parity carries ``"within_tolerance"`` (max |dp| <= :data:`FP32_TOLERANCE`).
    """
    from mer_keras.export.exporter import verify_export, write_export
    from mer_keras.export.formats import FORMATS
    from mer_keras.models.inference import predict_proba
    from mer_keras.registry import inference_model

    model = inference_model(model)
    reference = predict_proba(model, x_train)
    files = {}
    for fmt in (FORMATS["tflite_fp32"], FORMATS["tflite_int8"]):
        path, info = write_export(model, fmt, run, x_train, y)
        info["parity"] = verify_export(path, fmt, reference, x_train, y, classes)
        files[path.name] = info
        if fmt.quant == "none":
            parity = info["parity"]
            parity["tolerance"] = FP32_TOLERANCE
            parity["within_tolerance"] = parity["max_abs_diff"] <= FP32_TOLERANCE
    return files


def fit_final(opts: TrainOptions, rep: RepresentationConfig, cfg, data: Dataset, inputs: Inputs,
              groups: Sequence[str], run: RunFolder, strategy, console) -> None:
    """Step *final fit*: the model fitted on every training subject (all but a cross-protocol test
    set), saved with its exports and metadata.json (by the chief)."""
    from mer_keras.registry import get_spec
    from mer_keras.train.fit import fit_model, weights_fingerprint
    from mer_keras.train.strategy import is_chief

    final = np.array([g != "test" for g in groups]) if opts.protocol == "cross" else np.ones(len(groups), bool)
    aus = aux_aus(data) if get_spec(opts.model).aux_losses else None
    console.print("fitting the final model on all training subjects")
    model = fit_model(inputs.x[final], inputs.y[final], len(data.classes), cfg, strategy,
                      aus=[aus[i] for i in np.flatnonzero(final)] if aus is not None else None,
                      backup_dir=run.backup_root / "final")
    console.print(f"final model weights sha256 {weights_fingerprint(model)}")
    if is_chief(strategy):
        write_final_model(model, cfg, opts, rep, run, data, inputs.x[final], inputs.y[final], console)


def write_final_model(model, cfg, opts: TrainOptions, rep: RepresentationConfig, run: RunFolder, data: Dataset,
                      x: np.ndarray, y: np.ndarray, console) -> None:
    """Save the final model (float32, inference outputs only, weights without optimizer state), its
    TFLite exports and metadata.json.

    The Adam moments would triple ``model.keras`` (HTNet: 1.68 GB instead of 0.56 GB) and nothing
    reads them: a killed fit resumes from its backup, ``--init-from`` takes weights only.
    metadata.json is written last: its presence marks a complete run.
    """
    from mer_keras import atomic
    from mer_keras._keras import keras
    from mer_keras.export.metadata import build_metadata, sha256_file
    from mer_keras.models.io import save_keras
    from mer_keras.registry import inference_model
    from mer_keras.train.fit import local_float32_copy

    model = inference_model(local_float32_copy(model, cfg))  # training-only heads are not saved or exported
    if model.optimizer is not None:  # an uncompiled view of the same layers: saved without optimizer state
        model = keras.Model(model.inputs, model.outputs, name=model.name)
    path = run.path / "model.keras"
    save_keras(model, path)
    files = {"model.keras": {"format": "keras", "sha256": sha256_file(path), "bytes": path.stat().st_size}}
    if opts.export:
        exported = export_tflite(model, run.path, x, y, data.classes)
        atomic.write_json(run.path / "export_report.json", exported)
        for name, info in exported.items():
            files[name] = {k: v for k, v in info.items() if k != "parity"}
            par = info["parity"]
            console.print(f"{name}: {info['bytes'] / 1e6:.2f} MB in {info['seconds']:.1f} s, max |p - p_keras| "
                          f"{par['max_abs_diff']:.2e}, argmax agreement {par['argmax_agreement']:.3f}")
            if par.get("within_tolerance") is False:
                console.print(f"[bold red]warning:[/] {name} differs from Keras by more than {FP32_TOLERANCE}")
    atomic.write_json(run.path / "metadata.json", build_metadata(opts.model, data.classes, asdict(rep),
                                                                 rep.input_shape, data.name, opts.protocol, files,
                                                                 window=window_from_samples(data.samples),
                                                                 apex_policy=opts.apex))


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
    from mer_keras.registry import get_spec
    from mer_keras.train.strategy import get_strategy, is_chief

    console = console or Console()
    t_start = time.perf_counter()
    if opts.resume:
        opts = resume_options(opts.resume)
        console.print(f"resuming {opts.resume} with its recorded options", soft_wrap=True)
    opts, rep = resolve_options(opts)
    strategy = get_strategy(opts.strategy)  # a multi-worker strategy must exist before any TF op
    chief = is_chief(strategy)
    data = load_data(DataRequest.of(opts), console)
    if opts.init_from:
        check_transfer(opts, rep, data, console)
    inputs = build_dataset_inputs(data, rep, console, cache_dir=opts.cache_dir, workers=opts.workers,
                                  strict=opts.strict)
    protocol = PROTOCOLS[opts.protocol]
    groups = protocol.groups(data.rows, data.test_databases)
    if opts.folds and list(opts.folds) == ["none"]:
        only = []
    elif opts.folds:
        only = protocol.select(groups, opts.folds)
    else:
        only = None if protocol.per_subject else ["test"]
    run, completed = open_run_folder(opts, rep, data, groups, strategy, console)
    if data.skipped and chief:
        run.write_skipped(data.skipped)
    cfg = train_config(opts, rep)
    n_folds = len(only) if only is not None else len(set(groups))
    console.print(f"training {get_spec(opts.model).name} on {rep.representation} {rep.input_shape}, LOSO over "
                  f"{len(set(groups))} subjects ({n_folds} fold(s) in this run), {opts.epochs} epochs, "
                  f"{strategy.num_replicas_in_sync} replica(s)" + ("" if chief else ", as a non-chief worker"))
    if n_folds:
        run_protocol(opts, rep, cfg, data, inputs, groups, only, run, completed, strategy, console)
    if opts.wants_final:
        fit_final(opts, rep, cfg, data, inputs, groups, run, strategy, console)
    elif chief:
        console.print("no final model in this run (--folds): pool the folds with `mer-keras merge`; fit the final "
                      "model with --folds none", soft_wrap=True)
    if chief:
        run.remove_backups()
    console.print(f"done in {time.perf_counter() - t_start:.0f} s")
    return run.path


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
        opts = options_from_config(config)
        rep = RepresentationConfig(**config["representation_config"])
    except (KeyError, TypeError) as exc:
        raise RunFolderError(f"{folder.path / 'config.json'}: not a run configuration "
                             f"({type(exc).__name__}: {exc})") from None
    data = load_data(DataRequest.of(opts), console)
    inputs = build_dataset_inputs(data, rep, console, cache_dir=opts.cache_dir, workers=opts.workers,
                                  strict=opts.strict)
    if config.get("classes") and list(config["classes"]) != list(data.classes):
        raise RunFolderError(f"{folder.path}: the data's classes {data.classes} "
                             f"differ from the run's {config['classes']}")
    groups = PROTOCOLS[opts.protocol].groups(data.rows, data.test_databases)
    return opts, rep, data, inputs, np.array([g != "test" for g in groups])
