"""The main job: data -> representation -> LOSO -> final model -> export, into one run folder.

Run folder contents: ``config.json`` (every option), ``results.json`` (pooled and per-fold
metrics), ``predictions.csv``, ``confusion_matrix.png``, ``model.keras`` (final model fitted on
all subjects), ``metadata.json``, ``model_fp32.tflite``, ``model_int8.tflite`` and
``export_report.json`` (Keras vs TFLite parity).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from mer_keras import atomic
from mer_keras.data.pipeline import RepresentationConfig, build_inputs
from mer_keras.data.records import Sample
from mer_keras.data.synthetic import CLASSES as SYNTHETIC_CLASSES
from mer_keras.data.synthetic import SyntheticConfig, default_cache_dir, synthetic_dataset
from mer_keras.registry import create_model, get_spec


@dataclass
class RunOptions:
    """Every option of ``mer-keras train`` (saved as config.json)."""

    model: str = "learnet"
    representation: str | None = None
    variant: str | None = None
    epochs: int = 80
    batch_size: int = 32
    lr: float = 1e-3
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


def _progress(console):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console, transient=False)


def representation_config(model: str, representation: str | None, flow_method: str = "tvl1") -> RepresentationConfig:
    """The representation a model is trained on: its registered one unless overridden."""
    spec = get_spec(model)
    return RepresentationConfig(representation=representation or spec.representation,
                                size=spec.input_shape[0], flow_method=flow_method)


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


def make_run_dir(out: str | Path, model: str, dataset: str) -> Path:
    """A new, unique run folder ``<out>/<YYYYmmdd-HHMMSS>-<model>-<dataset>``."""
    base = Path(out) / f"{time.strftime('%Y%m%d-%H%M%S')}-{model}-{dataset}"
    run, k = base, 1
    while run.exists():
        k += 1
        run = base.with_name(f"{base.name}-{k}")
    run.mkdir(parents=True)
    return run


def save_keras(model, path: Path) -> None:
    """Save a Keras model atomically (``.keras``)."""
    with atomic.atomic_path(path) as tmp:
        model.save(tmp)


#: Largest accepted |p_tflite - p_keras| for the float32 export (issue #2 acceptance).
FP32_TOLERANCE = 1e-4


def export_tflite(model, run: Path, x_train: np.ndarray, y: np.ndarray, classes: Sequence[str]) -> dict:
    """Write model_fp32.tflite and model_int8.tflite and check them against Keras on ``x_train``.

    Returns:
        {filename: {"format", "sha256", "bytes", "seconds", "quantization", "parity"}}; the fp32
        parity carries ``"within_tolerance"`` (max |dp| <= :data:`FP32_TOLERANCE`).
    """
    from mer_keras.export.formats import FORMATS
    from mer_keras.export.metadata import sha256_file
    from mer_keras.export.tflite import TFLiteModel, convert
    from mer_keras.export.verify import compare_outputs
    from mer_keras.train.trainer import predict_proba

    reference = predict_proba(model, x_train)
    files = {}
    for fmt in (FORMATS["tflite_fp32"], FORMATS["tflite_int8"]):
        t0 = time.perf_counter()
        blob = convert(model, fmt.quant, representative=x_train)
        path = run / fmt.filename
        atomic.write_bytes(path, blob)
        seconds = time.perf_counter() - t0
        tfl = TFLiteModel(path)
        files[fmt.filename] = {"format": fmt.name, "sha256": sha256_file(path), "bytes": path.stat().st_size,
                               "seconds": round(seconds, 2), "quantization": tfl.quantization(),
                               "parity": compare_outputs(reference, tfl.predict(x_train), y, classes)}
        if fmt.quant == "none":
            parity = files[fmt.filename]["parity"]
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


def train_run(opts: RunOptions, console=None) -> Path:
    """Run the main job and return the run folder.

    Raises:
        ValueError, KeyError, FileNotFoundError: bad options or data (messages name the problem).
    """
    from rich.console import Console

    from mer_keras.train.callbacks import ProgressCallback
    from mer_keras.train.metrics import compute_metrics, plot_confusion_matrix
    from mer_keras.train.strategy import get_strategy
    from mer_keras.train.trainer import TrainConfig, fit_model, run_loso

    console = console or Console()
    t_start = time.perf_counter()
    spec = get_spec(opts.model)
    rep = representation_config(opts.model, opts.representation, opts.flow_method)
    model_options = {"variant": opts.variant} if opts.variant else {}
    create_model(opts.model, 3, input_shape=rep.input_shape, **model_options)  # bad options fail before any work
    dataset, samples, classes = load_default_dataset(opts, console)
    groups = [f"{s.database}/{s.subject}" for s in samples]
    only = select_folds(groups, opts.folds) if opts.folds else None
    cache = default_cache_dir(opts.cache_dir)
    with _progress(console) as prog:
        task = prog.add_task(f"{rep.representation}", total=len(samples), info="")
        x = build_inputs(samples, rep, cache_dir=cache, progress=lambda d, t: prog.update(task, completed=d))
        prog.update(task, completed=len(samples))
    y = np.array([classes.index(s.label) for s in samples])
    # The run folder is made only once the inputs exist: bad data leaves no half-made run behind.
    run = make_run_dir(opts.out, opts.model, dataset)
    atomic.write_json(run / "config.json", {**asdict(opts), "representation_config": asdict(rep),
                                            "dataset": dataset, "classes": classes})

    strategy = get_strategy(opts.strategy)
    cfg = TrainConfig(model=opts.model, epochs=opts.epochs, batch_size=opts.batch_size, lr=opts.lr, seed=opts.seed,
                      augment=opts.augment, class_weight=opts.class_weight, model_options=model_options,
                      flow_input=rep.representation == "flow")
    console.print(f"training {spec.name} on {rep.representation} {rep.input_shape}, LOSO over "
                  f"{len(set(groups))} subjects, {opts.epochs} epochs, {strategy.num_replicas_in_sync} replica(s)")
    with _progress(console) as prog:
        n_folds = len(only) if only else len(set(groups))
        fold_task = prog.add_task("LOSO folds", total=n_folds, info="")
        epoch_task = prog.add_task("epochs", total=opts.epochs, info="")

        def callbacks(fold):
            prog.reset(epoch_task, total=opts.epochs)
            prog.update(fold_task, info=f"test subject {fold.name}")
            return [ProgressCallback(prog, epoch_task)]

        def fold_end(fold, p):
            prog.update(fold_task, advance=1)

        loso = run_loso(x, y, groups, classes, cfg, strategy, only=only, fold_callbacks=callbacks, on_fold_end=fold_end)

    probs = loso["probabilities"]
    tested = ~np.isnan(probs).any(1)
    pred = probs.argmax(1)
    metrics = compute_metrics(y[tested], pred[tested], classes)
    import pandas as pd

    rows = [{"subject": s.subject, "clip": s.clip_id, "database": s.database, "label": s.label,
             "prediction": classes[pred[i]] if tested[i] else "", **{f"p_{c}": float(probs[i, k]) for k, c in enumerate(classes)}}
            for i, s in enumerate(samples) if tested[i]]
    with atomic.atomic_path(run / "predictions.csv") as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    results = {"model": opts.model, "dataset": dataset, "protocol": "loso", "classes": classes,
               "representation": rep.representation, "n_samples": int(tested.sum()),
               "overall": {k: metrics[k] for k in ("accuracy", "uf1", "uar")},
               "per_class": metrics["per_class"], "confusion_matrix": metrics["confusion_matrix"],
               "folds": loso["folds"]}
    atomic.write_json(run / "results.json", results)
    plot_confusion_matrix(metrics["confusion_matrix"], classes, run / "confusion_matrix.png",
                          title=f"{opts.model} LOSO, UF1 {metrics['uf1']:.3f}")
    console.print(f"LOSO pooled over {tested.sum()} clips: accuracy {metrics['accuracy']:.3f}  "
                  f"UF1 {metrics['uf1']:.3f}  UAR {metrics['uar']:.3f}")

    console.print("fitting the final model on all subjects")
    model = fit_model(x, y, len(classes), cfg, strategy)
    save_keras(model, run / "model.keras")
    from mer_keras.export.metadata import build_metadata, sha256_file

    files = {"model.keras": {"format": "keras", "sha256": sha256_file(run / "model.keras"),
                             "bytes": (run / "model.keras").stat().st_size}}
    if opts.export:
        exported = export_tflite(model, run, x, y, classes)
        atomic.write_json(run / "export_report.json", exported)
        for name, info in exported.items():
            files[name] = {k: v for k, v in info.items() if k != "parity"}
            par = info["parity"]
            console.print(f"{name}: {info['bytes'] / 1e6:.2f} MB in {info['seconds']:.1f} s, max |p - p_keras| "
                          f"{par['max_abs_diff']:.2e}, argmax agreement {par['argmax_agreement']:.3f}")
            if par.get("within_tolerance") is False:
                console.print(f"[bold red]warning:[/] {name} differs from Keras by more than {FP32_TOLERANCE}")
    atomic.write_json(run / "metadata.json", build_metadata(opts.model, classes, asdict(rep), rep.input_shape,
                                                            dataset, "loso", files))
    console.print(f"done in {time.perf_counter() - t_start:.0f} s")
    return run
