"""The main job: data -> representation -> LOSO -> final model -> export, into one run folder.

Run folder contents: ``config.json`` (every option), ``results.json`` (pooled and per-fold
metrics), ``predictions.csv``, ``confusion_matrix.png``, ``model.keras`` (final model fitted on
all subjects), ``metadata.json``, ``model_fp32.tflite``, ``model_int8.tflite`` and
``export_report.json`` (Keras vs TFLite parity), and ``folds/<subject>.json``, one per finished
LOSO fold, so that ``mer-keras train --resume RUN`` continues a killed run where it stopped.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from mer_keras import atomic
from mer_keras.data.pipeline import RepresentationConfig, build_inputs, prepare
from mer_keras.data.records import Sample
from mer_keras.data.synthetic import CLASSES as SYNTHETIC_CLASSES
from mer_keras.data.synthetic import SyntheticConfig, default_cache_dir, synthetic_dataset
from mer_keras.registry import create_model, get_spec


@dataclass
class RunOptions:
    """Every option of ``mer-keras train`` (saved as config.json)."""

    model: str = "learnet"
    data: str | None = None
    root: str | None = None
    strict: bool = False
    protocol: str = "loso"
    test_data: str | None = None
    test_root: str | None = None
    apex: str = "midpoint"
    workers: int = 1
    representation: str | None = None
    variant: str | None = None
    epochs: int = 80
    batch_size: int = 32
    lr: float | None = None  # None: the model's registered rate (ModelSpec.learning_rate)
    seed: int = 0
    out: str = "runs"
    subjects: int = 12
    clips: int = 20
    faces: str | None = None
    folds: Sequence[str] | None = None
    export: bool = True
    strategy: str = "auto"
    augment: bool = True
    class_weight: bool = True
    flow_method: str = "tvl1"
    cache_dir: str | None = None
    aux_weights: dict | None = None
    init_from: str | None = None
    freeze_until: str | None = None
    resume: str | None = None
    cpu_replicas: int = 1
    deterministic: bool = True
    mixed_precision: bool = False
    final: bool | None = None  # None: fit the final model only when every fold runs (no --folds)
    backup_minutes: float = 1.0


def _progress(console):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console, transient=False)


def representation_config(model: str, representation: str | None, flow_method: str = "tvl1") -> RepresentationConfig:
    """The representation a model is trained on: its registered one unless overridden.

    The size (and T, channels, region layout) come from the model's registered input shape and
    representation options; options that do not apply to an overriding representation are dropped.
    """
    spec = get_spec(model)
    rep = representation or spec.representation
    shape = spec.input_shape
    if (rep == "sequence") != (spec.representation == "sequence"):
        raise ValueError(f"{model} takes {'a sequence of frames' if spec.representation == 'sequence' else 'one image'}"
                         f" ({spec.representation}); --representation {rep} does not fit it")
    options = dict(spec.representation_options) if rep == spec.representation else {}
    if rep == "sequence":
        options["frames"] = shape[0] if spec.representation == "sequence" else 8
    if rep in ("apex", "sequence") and shape[-1] == 1:
        options["channels"] = 1
    # Align at no less than the input size (a 224 px apex input is a 224 px crop, not an upscaled 128 one).
    return RepresentationConfig(representation=rep, size=shape[-2], crop=max(128, shape[-2]), flow_method=flow_method,
                                **options)


def load_default_dataset(opts: RunOptions, console) -> tuple[str, list[Sample], list[str]]:
    """The embedded synthetic set (generated on first use, then cached)."""
    cfg = SyntheticConfig(subjects=opts.subjects, clips_per_subject=opts.clips, seed=opts.seed)
    cache = default_cache_dir(opts.cache_dir)
    with _progress(console) as prog:
        task = prog.add_task("synthetic clips", total=cfg.subjects * cfg.clips_per_subject, info="")
        root, samples = synthetic_dataset(cfg, faces_dir=opts.faces, cache_dir=cache,
                                          progress=lambda d, t: prog.update(task, completed=d))
        prog.update(task, completed=len(samples))
    console.print(f"synthetic data: {len(samples)} clips of {cfg.subjects} subjects, cached at {root}", soft_wrap=True)
    return "synthetic", samples, list(SYNTHETIC_CLASSES)


@dataclass
class RunData:
    """What a run trains on: one row per record (clips first, then precomputed images)."""

    name: str
    classes: list[str]
    samples: list[Sample]
    image_records: list
    skipped: list[tuple[str, str]]
    counts: dict
    test_databases: tuple[str, ...] = ()  # cross-database protocol: records of these are the test set

    @property
    def rows(self) -> list[dict]:
        """subject, clip, database, label of every record, in input order."""
        return ([{"subject": s.subject, "clip": s.clip_id, "database": s.database, "label": s.label}
                 for s in self.samples]
                + [{"subject": r.subject, "clip": Path(r.path).name, "database": r.dataset, "label": r.label}
                   for r in self.image_records])


def load_run_data(opts: RunOptions, console) -> RunData:
    """The synthetic default, or ``--data NAME --root PATH`` (see :mod:`mer_keras.data.datasets`)."""
    if opts.protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {opts.protocol!r}; expected one of {PROTOCOLS}")
    if opts.protocol == "cross":
        from mer_keras.data.datasets import load_cross

        if not opts.data or not opts.test_data:
            raise ValueError("--protocol cross needs --data TRAIN_DB and --test-data TEST_DB")
        train, test = load_cross(opts.data, opts.root, opts.test_data, opts.test_root, opts.strict, opts.apex)
        console.print(f"cross-database: train {train.name} ({len(train.samples)} clips) -> test {test.name} "
                      f"({len(test.samples)} clips) in classes {', '.join(train.classes)}", soft_wrap=True)
        return RunData(f"{train.name}-to-{test.name}", train.classes, train.samples + test.samples, [],
                       train.skipped + test.skipped, {}, test_databases=(test.name,))
    if opts.protocol == "composite" and opts.data != "composite":
        raise ValueError("--protocol composite runs on --data composite")
    if not opts.data or opts.data == "synthetic":
        name, samples, classes = load_default_dataset(opts, console)
        return RunData(name, classes, samples, [], [], {})
    from mer_keras.data.database import describe
    from mer_keras.data.datasets import load_dataset

    ds = load_dataset(opts.data, opts.root, strict=opts.strict, apex_policy=opts.apex, cache_dir=opts.cache_dir)
    console.print(f"{ds.name}: {len(ds.samples) + len(ds.images)} samples of "
                  f"{len({s.subject for s in ds.samples} | {i.subject for i in ds.images})} subjects in classes "
                  f"{', '.join(ds.classes)}; {len(ds.skipped)} skipped", soft_wrap=True)
    for where, why in ds.skipped[:5]:
        console.print(f"  skipped {describe(where, why)}", soft_wrap=True, highlight=False)
    for db, c in ds.counts.items():
        console.print(f"  {db}: {c}", highlight=False)
    return RunData(ds.name, ds.classes, ds.samples, ds.images, ds.skipped, ds.counts)


@dataclass
class RunInputs:
    """The network inputs of a run's records (after preprocessing; failed clips dropped from ``data``).

    Attributes:
        x: (N, *input_shape) float32 in [0, 255]. y: (N,) int class indices.
        groups: LOSO group per record (``database/subject``; ``train``/``test`` for the cross protocol).
        final: (N,) bool, the records the final model is fitted on (all but a cross-protocol test set).
    """

    x: np.ndarray
    y: np.ndarray
    groups: list[str]

    @property
    def final(self) -> np.ndarray:
        return np.array([g != "test" for g in self.groups])


def build_run_inputs(opts: RunOptions, rep: RepresentationConfig, console, data: RunData) -> RunInputs:
    """Preprocess (through the cache) and stack the inputs of ``data``.

    Clips that fail preprocessing are dropped from ``data.samples`` and added to ``data.skipped``
    (fatal with ``opts.strict``).

    Raises:
        ValueError: a bad clip with ``--strict``, or image rows for a sequence model.
    """
    cache = default_cache_dir(opts.cache_dir)
    with _progress(console) as prog:
        task = prog.add_task(f"{rep.representation}", total=len(data.samples), info="")
        errors = prepare(data.samples, rep, cache, workers=opts.workers,
                         progress=lambda d, t: prog.update(task, completed=d))
    if errors:  # clips that cannot be preprocessed (no face, unreadable frames): skipped, or fatal with --strict
        first = min(errors)
        if opts.strict:
            raise ValueError(f"{data.samples[first].source or data.samples[first].key}: {errors[first]}")
        data.skipped += [(data.samples[i].source or data.samples[i].key, errors[i]) for i in sorted(errors)]
        data.samples = [s for i, s in enumerate(data.samples) if i not in errors]
        console.print(f"{len(errors)} clip(s) skipped in preprocessing, e.g. {errors[first]}", soft_wrap=True)
    rows = data.rows
    x = build_inputs(data.samples, rep, cache_dir=cache)
    if data.image_records:
        from mer_keras.data.pipeline import image_inputs

        if rep.representation == "sequence":
            raise ValueError(f"{opts.data}: precomputed image rows cannot feed the sequence representation of "
                             f"{opts.model}; give frame folders or videos")
        x = np.concatenate([x, image_inputs([r.path for r in data.image_records], rep.size, rep.channels)])
    y = np.array([data.classes.index(r["label"]) for r in rows])
    if data.test_databases:
        groups = ["test" if r["database"] in data.test_databases else "train" for r in rows]
    else:
        groups = [f"{r['database']}/{r['subject']}" for r in rows]
    return RunInputs(x, y, groups)


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


def load_run_inputs(run: str | Path, console) -> tuple[RunOptions, RepresentationConfig, RunData, RunInputs]:
    """Rebuild a finished or interrupted run's data and inputs from its config.json (cache reused).

    Raises:
        FileNotFoundError: no config.json. ValueError: unreadable config, or the data changed.
    """
    run = Path(run)
    config = read_config(run)
    try:
        opts = options_from_config(config)
        rep = RepresentationConfig(**config["representation_config"])
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{run / 'config.json'}: not a run configuration ({type(exc).__name__}: {exc})") from None
    data = load_run_data(opts, console)
    inputs = build_run_inputs(opts, rep, console, data)
    if config.get("classes") and list(config["classes"]) != list(data.classes):
        raise ValueError(f"{run}: the data's classes {data.classes} differ from the run's {config['classes']}")
    return opts, rep, data, inputs


#: ``loso``: leave-one-subject-out; ``composite``: LOSO on the MEGC2019 composite, reported per
#: database too; ``cross``: train on one database, test on another.
PROTOCOLS = ("loso", "composite", "cross")


def make_run_dir(out: str | Path, model: str, dataset: str, when: float | None = None) -> Path:
    """A new, unique run folder ``<out>/<YYYYmmdd-HHMMSS>-<model>-<dataset>[-k]`` (time ``when``, default now)."""
    base = run_dir_name(out, model, dataset, when)
    run, k = base, 1
    while run.exists():
        k += 1
        run = run_dir_name(out, model, dataset, when, k)
    run.mkdir(parents=True)
    return run


def run_dir_name(out: str | Path, model: str, dataset: str, when: float | None = None, k: int = 1) -> Path:
    """The path ``<out>/<YYYYmmdd-HHMMSS>-<model>-<dataset>`` (with ``-k`` for k > 1), not created."""
    base = Path(out) / f"{time.strftime('%Y%m%d-%H%M%S', time.localtime(when))}-{model}-{dataset}"
    return base if k == 1 else base.with_name(f"{base.name}-{k}")


def save_keras(model, path: Path) -> None:
    """Save a Keras model atomically (``.keras``)."""
    with atomic.atomic_path(path) as tmp:
        model.save(tmp)


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
    from mer_keras.registry import inference_model
    from mer_keras.train.trainer import predict_proba

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


def select_folds(groups: Sequence[str], wanted: Sequence[str]) -> list[str]:
    """Map ``--folds`` names (``sub01`` or ``synthetic/sub01``) to LOSO group names.

    Raises:
        ValueError: a name matches no subject (the message lists the known ones).
    """
    known = sorted(set(groups))
    by_short = {g.split("/", 1)[-1]: g for g in known}
    out, unknown = [], []
    for w in wanted:
        g = w if w in known else by_short.get(w)
        (out if g else unknown).append(g or w)
    if unknown:
        raise ValueError(f"unknown subject(s) {unknown} in --folds; known: {', '.join(by_short)}")
    return out


def read_config(run: Path, context: str = "") -> dict:
    """A run folder's config.json as a dict.

    Raises:
        FileNotFoundError: no config.json (``context`` prefixes the message). ValueError: not JSON.
    """
    path = Path(run) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{context}{run}: no config.json (not a run folder)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not readable JSON ({exc})") from None


def resume_options(run: str | Path) -> RunOptions:
    """The options of an interrupted run, from its config.json (``resume`` set to the folder).

    Raises:
        FileNotFoundError: no config.json. ValueError: unreadable, or the run already finished.
    """
    run = Path(run)
    config = read_config(run, "cannot resume ")
    opts = options_from_config(config, resume=str(run))
    if (run / "metadata.json").exists() or (not wants_final(opts) and (run / "results.json").exists()):
        raise ValueError(f"{run} is complete (metadata.json, or results.json of a --folds run, is written last); "
                         "nothing to resume")
    return opts


def options_from_config(config: dict, **overrides) -> RunOptions:
    """:class:`RunOptions` from a run's config.json (keys that are not options are ignored)."""
    from dataclasses import fields

    return RunOptions(**{**{f.name: config[f.name] for f in fields(RunOptions) if f.name in config}, **overrides})


def fold_file(run: Path, fold_name: str) -> Path:
    """``RUN/folds/<subject>.json``: one finished LOSO fold (written atomically as it ends)."""
    return run / "folds" / (fold_name.replace("/", "__") + ".json")


def load_completed_folds(run: Path, groups: Sequence[str], keys: Sequence[str],
                         classes: Sequence[str] = ()) -> dict[str, dict]:
    """Finished folds of an interrupted run, checked against the current data and classes.

    Raises:
        ValueError: a fold file is unreadable or its test clips differ from the data now.
    """
    from mer_keras.data.protocols import LOSO

    test_sets = {f.name: f.test for f in LOSO().folds(groups)}
    completed = {}
    for path in sorted((run / "folds").glob("*.json")):
        try:
            saved = json.loads(path.read_text())
            name = saved["subject"]
            test = test_sets[name]
            if saved["test_keys"] != [keys[i] for i in test]:
                raise ValueError("its test clips differ from the data now (the data changed since the run started)")
            if classes and saved.get("classes", list(classes)) != list(classes):
                raise ValueError(f"its classes {saved['classes']} differ from the data's {list(classes)}")
            completed[name] = {"probabilities": np.asarray(saved["probabilities"], np.float32), "row": saved["row"]}
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: not a fold file of this run ({type(exc).__name__}: {exc})") from None
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    return completed


def check_init_source(init_from: str, dataset: str, protocol: str, console) -> None:
    """Refuse transfer learning from a final model fitted on the data being evaluated.

    A run's ``model.keras`` is fitted on every subject, so starting LOSO on the same dataset from
    it puts each test subject in the initial weights. The source's ``metadata.json`` (beside the
    model, or in the run folder) names its dataset.

    Raises:
        ValueError: the source was trained on ``dataset`` (or, for a composite, on a part of it).
    """
    src = Path(init_from)
    meta_path = (src if src.is_dir() else src.parent) / "metadata.json"
    if not meta_path.is_file():
        console.print(f"[yellow]note:[/] {init_from} has no metadata.json beside it: make sure it never saw the "
                      "test subjects of this run", soft_wrap=True)
        return
    try:
        source = json.loads(meta_path.read_text()).get("dataset")
    except json.JSONDecodeError as exc:
        raise ValueError(f"{meta_path}: not readable JSON ({exc})") from None
    parts = {dataset, *dataset.split("-to-")}
    if source in parts or (dataset == "composite" and source in ("casme2", "samm", "smic")):
        raise ValueError(f"--init-from {init_from} was trained on {source}, which holds the test subjects of this "
                         f"{protocol} run on {dataset}: its weights would leak them. Pre-train on other data.")


def wants_final(opts: RunOptions) -> bool:
    """Whether the run fits the final model: ``opts.final``; by default when it runs every fold, or no fold
    (``--folds none``), not when it runs some of them."""
    if opts.final is not None:
        return opts.final
    return not opts.folds or list(opts.folds) == ["none"]


def train_run(opts: RunOptions, console=None) -> Path:
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
        ValueError, KeyError, FileNotFoundError: bad options or data (messages name the problem).
    """
    from rich.console import Console

    from mer_keras.train.callbacks import ProgressCallback
    from mer_keras.train.results import write_results
    from mer_keras.train.strategy import broadcast_from_chief, get_strategy, is_chief, workers_agree
    from mer_keras.train.trainer import TrainConfig, fit_model, run_loso

    console = console or Console()
    t_start = time.perf_counter()
    if opts.resume:
        opts = resume_options(opts.resume)
        console.print(f"resuming {opts.resume} with its recorded options", soft_wrap=True)
    strategy = get_strategy(opts.strategy)  # first: a multi-worker strategy must exist before any TF op
    chief = is_chief(strategy)
    spec = get_spec(opts.model)
    if opts.lr is None:
        opts = replace(opts, lr=spec.learning_rate)  # recorded in config.json as used
    rep = representation_config(opts.model, opts.representation, opts.flow_method)
    model_options = {"variant": opts.variant} if opts.variant else {}
    if opts.variant:
        import inspect

        if "variant" not in inspect.signature(spec.builder).parameters:
            raise ValueError(f"{opts.model} has no variants; --variant applies to learnet and htnet")
    if opts.freeze_until and not opts.init_from:
        raise ValueError("--freeze-until needs --init-from (freezing random weights is never wanted)")
    if opts.init_from:
        from mer_keras.models.io import resolve_model_path

        resolve_model_path(opts.init_from)  # a missing source fails before any work
    create_model(opts.model, 3, input_shape=rep.input_shape, **model_options)  # bad options fail before any work
    if opts.aux_weights:
        from mer_keras.train.targets import aux_losses_for

        aux_losses_for(spec.aux_losses, opts.aux_weights)
    data = load_run_data(opts, console)
    if opts.init_from:
        from mer_keras.train.trainer import initialise_from

        check_init_source(opts.init_from, data.name, opts.protocol, console)
        probe = create_model(opts.model, len(data.classes), input_shape=rep.input_shape, **model_options)
        report = initialise_from(probe, opts.init_from, opts.freeze_until)  # fails early, before any fold
        console.print(f"--init-from {opts.init_from}: {len(report['copied'])} layers copied, "
                      f"{len(report['skipped'])} left at their initialisation "
                      f"({', '.join(report['skipped'][:6])}{', ...' if len(report['skipped']) > 6 else ''}), "
                      f"{report['frozen']} frozen", soft_wrap=True)
    inputs = build_run_inputs(opts, rep, console, data)
    dataset, samples, classes, rows, x, y = data.name, data.samples, data.classes, data.rows, inputs.x, inputs.y
    groups, only = inputs.groups, None
    if opts.folds and list(opts.folds) == ["none"]:
        only = []
    elif not data.test_databases and opts.folds:
        only = select_folds(groups, opts.folds)
    elif data.test_databases:  # cross-database: one fold, the test database held out whole
        only = ["test"]
    keys = [f"{r['database']}/{r['subject']}/{r['clip']}" for r in rows]
    if opts.resume:
        run = Path(opts.resume)
        completed = load_completed_folds(run, groups, keys, classes)
        if not workers_agree(strategy, len(completed)):  # every worker stops, none waits for the others
            raise ValueError(f"{run}: the workers see different numbers of finished folds (this one {len(completed)}); "
                             "multi-worker resume needs the run folder on a filesystem shared by all workers")
        console.print(f"{len(completed)} fold(s) already done: {', '.join(sorted(completed)) or '-'}", soft_wrap=True)
    else:
        # The run folder is made only once the inputs exist: bad data leaves no half-made run behind.
        # Every worker of a multi-worker run uses the chief's folder name (its backups live there).
        when = broadcast_from_chief(strategy, time.time())
        k = 0
        if chief:
            run = make_run_dir(opts.out, opts.model, dataset, when=when)
            k = next(k for k in range(1, 10_000) if run_dir_name(opts.out, opts.model, dataset, when, k) == run)
        k = int(broadcast_from_chief(strategy, k))  # after the chief made its folder
        if not chief:  # the chief's name; created here only when the disk is not shared
            run = run_dir_name(opts.out, opts.model, dataset, when, k)
            run.mkdir(parents=True, exist_ok=True)
        completed = {}
        if chief:
            atomic.write_json(run / "config.json", {**asdict(opts), "representation_config": asdict(rep),
                                                    "dataset": dataset, "classes": classes,
                                                    "loso_subjects": sorted(set(groups))})
    if data.skipped and chief:
        import pandas as pd

        with atomic.atomic_path(run / "skipped.csv") as tmp:
            pd.DataFrame(data.skipped, columns=["where", "why"]).to_csv(tmp, index=False)

    cfg = TrainConfig(model=opts.model, epochs=opts.epochs, batch_size=opts.batch_size, lr=opts.lr, seed=opts.seed,
                      augment=opts.augment, class_weight=opts.class_weight, model_options=model_options,
                      flow_input=rep.representation == "flow", aux_weights=dict(opts.aux_weights or {}),
                      init_from=opts.init_from, freeze_until=opts.freeze_until, deterministic=opts.deterministic,
                      mixed_precision=opts.mixed_precision, backup_minutes=opts.backup_minutes)
    aus = [s.aus for s in samples] + [() for _ in data.image_records] if spec.aux_losses else None
    n_folds = len(only) if only is not None else len(set(groups))
    console.print(f"training {spec.name} on {rep.representation} {rep.input_shape}, LOSO over "
                  f"{len(set(groups))} subjects ({n_folds} fold(s) in this run), {opts.epochs} epochs, "
                  f"{strategy.num_replicas_in_sync} replica(s)" + ("" if chief else ", as a non-chief worker"))
    if n_folds:
        with _progress(console) as prog:
            fold_task = prog.add_task("LOSO folds", total=n_folds, info="")
            epoch_task = prog.add_task("epochs", total=opts.epochs, info="")

            def callbacks(fold):
                prog.reset(epoch_task, total=opts.epochs)
                prog.update(fold_task, info=f"test subject {fold.name}")
                return [ProgressCallback(prog, epoch_task)]

            def fold_end(fold, p, row):
                if chief:
                    atomic.write_json(fold_file(run, fold.name), {
                        "subject": fold.name, "classes": classes, "test_keys": [keys[i] for i in fold.test],
                        "labels": [classes[y[i]] for i in fold.test], "probabilities": p.tolist(), "row": row})
                prog.update(fold_task, advance=1)

            prog.update(fold_task, advance=len([f for f in completed if only is None or f in only]))
            loso = run_loso(x, y, groups, classes, cfg, strategy, only=only, fold_callbacks=callbacks,
                            on_fold_end=fold_end, aus=aus, completed=completed, backup_root=run / "backup")
        if chief:
            write_results(run, {"model": opts.model, "dataset": dataset, "protocol": opts.protocol,
                                "representation": rep.representation, "counts": data.counts,
                                "skipped": len(data.skipped)},
                          classes, rows, y, loso["probabilities"], loso["folds"], console)

    if wants_final(opts):
        final = inputs.final
        console.print("fitting the final model on all training subjects")
        model = fit_model(x[final], y[final], len(classes), cfg, strategy,
                          aus=[aus[i] for i in np.flatnonzero(final)] if aus is not None else None,
                          backup_dir=run / "backup" / "final")
        from mer_keras.train.trainer import weights_fingerprint

        console.print(f"final model weights sha256 {weights_fingerprint(model)}")
        if chief:
            write_final_model(model, cfg, opts, rep, run, data, x[final], y[final], console)
    elif chief:
        console.print(f"no final model in this run (--folds): pool the folds with `mer-keras merge`; fit the final "
                      f"model with --folds none", soft_wrap=True)
    if chief:
        import shutil

        shutil.rmtree(run / "backup", ignore_errors=True)
    console.print(f"done in {time.perf_counter() - t_start:.0f} s")
    return run


def write_final_model(model, cfg, opts: RunOptions, rep: RepresentationConfig, run: Path, data: RunData,
                      x: np.ndarray, y: np.ndarray, console) -> None:
    """Save the final model (float32, inference outputs only, weights without optimizer state), its
    TFLite exports and metadata.json.

    The Adam moments would triple ``model.keras`` (HTNet: 1.68 GB instead of 0.56 GB) and nothing
    reads them: a killed fit resumes from its backup, ``--init-from`` takes weights only.
    metadata.json is written last: its presence marks a complete run.
    """
    from mer_keras._keras import keras
    from mer_keras.export.metadata import build_metadata, sha256_file
    from mer_keras.registry import inference_model
    from mer_keras.train.trainer import local_float32_copy

    model = inference_model(local_float32_copy(model, cfg))  # training-only heads are not saved or exported
    if model.optimizer is not None:  # an uncompiled view of the same layers: saved without optimizer state
        model = keras.Model(model.inputs, model.outputs, name=model.name)
    save_keras(model, run / "model.keras")
    files = {"model.keras": {"format": "keras", "sha256": sha256_file(run / "model.keras"),
                             "bytes": (run / "model.keras").stat().st_size}}
    if opts.export:
        exported = export_tflite(model, run, x, y, data.classes)
        atomic.write_json(run / "export_report.json", exported)
        for name, info in exported.items():
            files[name] = {k: v for k, v in info.items() if k != "parity"}
            par = info["parity"]
            console.print(f"{name}: {info['bytes'] / 1e6:.2f} MB in {info['seconds']:.1f} s, max |p - p_keras| "
                          f"{par['max_abs_diff']:.2e}, argmax agreement {par['argmax_agreement']:.3f}")
            if par.get("within_tolerance") is False:
                console.print(f"[bold red]warning:[/] {name} differs from Keras by more than {FP32_TOLERANCE}")
    atomic.write_json(run / "metadata.json", build_metadata(opts.model, data.classes, asdict(rep), rep.input_shape,
                                                            data.name, opts.protocol, files,
                                                            window=window_from_samples(data.samples),
                                                            apex_policy=opts.apex))
