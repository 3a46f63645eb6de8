"""Writing one export format of a model, and ``mer-keras export RUN``: files, metadata, verification.

Every export is written next to the run's ``metadata.json`` (atomically: a temporary file or
folder renamed into place), recorded there (format, sha256, bytes, quantization scales, float ops
left), and verified against the Keras model: max and mean |p_export - p_keras|, argmax agreement
and pooled UF1 of both on held-out inputs (``export_report.json``).
"""

from __future__ import annotations

import contextlib
import io
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from mer_keras import atomic
from mer_keras.export.formats import FORMATS, ExportFormat


@dataclass
class QATOptions:
    """Quantization-aware fine-tuning budget (``--qat-epochs``, ``--qat-lr``) and the run's training setup."""

    epochs: int = 3
    lr: float = 1e-4
    batch_size: int = 32
    flow_input: bool = False
    augment: bool = True
    class_weight: bool = True
    seed: int = 0


def write_export(model, fmt: ExportFormat, folder: Path, x_train: np.ndarray | None = None,
                 y_train: np.ndarray | None = None, qat: QATOptions | None = None) -> tuple[Path, dict]:
    """Write ``model`` in one format into ``folder``.

    Args:
        model: the float single-output classifier (``keras.Model``), input float32 in [0, 255].
        fmt: a row of :data:`~mer_keras.export.formats.FORMATS`.
        x_train, y_train: (N, ...) float32 training inputs and (N,) int labels; needed when
            ``fmt.needs_data`` (int8 calibration, QAT fine-tuning).
    Returns:
        (path, info) with info {"format", "bytes", "sha256" (files), "seconds", and for TFLite
        "quantization" (input/output scale and zero point), "float_ops", "float_fallback"; for QAT
        "qat": the layer plan and the fine-tuning history}.
    Raises:
        ValueError: training inputs missing for a format that needs them.
    """
    from mer_keras.export.metadata import sha256_file

    if fmt.needs_data and (x_train is None or len(x_train) == 0):
        raise ValueError(f"{fmt.name} needs the run's training inputs (calibration or fine-tuning)")
    t0 = time.perf_counter()
    path = Path(folder) / fmt.filename
    info: dict = {"format": fmt.name}
    if fmt.format == "keras":
        if not path.is_file():  # a run folder's model.keras is the source itself: kept as it is
            from mer_keras.train.run import save_keras

            save_keras(model, path)
    elif fmt.format == "saved_model":
        with atomic.atomic_dir(path) as tmp, contextlib.redirect_stdout(io.StringIO()):  # Keras prints the endpoints
            model.export(str(tmp))
    else:
        from mer_keras.export.tflite import TFLiteModel, convert_checked

        source = model
        if fmt.quant == "qat":
            from mer_keras.export.quantize import qat_fine_tune

            q = qat or QATOptions()
            source, plan, history = qat_fine_tune(model, x_train, y_train, epochs=q.epochs, lr=q.lr,
                                                  batch_size=q.batch_size, flow_input=q.flow_input,
                                                  augment=q.augment, class_weight=q.class_weight, seed=q.seed)
            info["qat"] = {"epochs": q.epochs, "lr": q.lr, **plan.summary(),
                           "final_train_accuracy": history.get("accuracy", [None])[-1]}
        blob, checked = convert_checked(source, fmt.quant, x_train)
        atomic.write_bytes(path, blob)
        info.update(checked, quantization=TFLiteModel(path).quantization())
    info["seconds"] = round(time.perf_counter() - t0, 2)
    if path.is_file():
        info.update(bytes=path.stat().st_size, sha256=sha256_file(path))
    else:
        info["bytes"] = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path, info


def predict_export(path: Path, fmt: ExportFormat, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """(N, K) float32 probabilities of an exported model on (N, ...) float32 inputs in [0, 255]."""
    if fmt.format == "tflite":
        from mer_keras.export.tflite import TFLiteModel

        return TFLiteModel(path).predict(x)
    if fmt.format == "saved_model":
        from mer_keras._keras import tf

        loaded = tf.saved_model.load(str(path))  # keep a reference: the endpoint's variables live in it
        return np.concatenate([loaded.serve(tf.constant(x[i:i + batch_size], tf.float32)).numpy()
                               for i in range(0, len(x), batch_size)])
    from mer_keras.models.io import load_model
    from mer_keras.train.trainer import predict_proba

    return predict_proba(load_model(path), x)


def verify_export(path: Path, fmt: ExportFormat, reference: np.ndarray, x: np.ndarray, y: np.ndarray,
                  classes: Sequence[str]) -> dict:
    """Parity of an export with the Keras model's probabilities ``reference`` on inputs ``x``.

    Returns:
        :func:`mer_keras.export.verify.compare_outputs` plus ``uf1_drop_points``
        (100 x (UF1 Keras - UF1 export)).
    """
    from mer_keras.export.verify import compare_outputs

    out = compare_outputs(reference, predict_export(path, fmt, x), y, classes)
    out["uf1_drop_points"] = round(100 * (out["uf1_reference"] - out["uf1_candidate"]), 2)
    return out


#: Largest UF1 drop (points) of an int8 or QAT-int8 export against float32 the project accepts (issue #5).
INT8_UF1_BUDGET_POINTS = 2.0


def heldout_inputs(opts, rep, classes: Sequence[str], console, verify_data: str | None = None,
                   verify_root: str | None = None) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    """Inputs the exported model never saw, for verification.

    Synthetic runs: a new synthetic set (seed + 1: new pseudo-subjects and clips, the run's size).
    Database runs: ``verify_data`` (a database name or manifest) when given; its clips whose label
    is not one of the run's classes are left out, and so are clips that fail preprocessing (no
    face, unreadable frames), as in training.

    Returns:
        (x, y, description); x is None when no held-out data is available (the caller falls back).
    Raises:
        ValueError: ``verify_data`` has no usable clip in the run's classes (names both).
    """
    from mer_keras.data.pipeline import build_inputs, prepare
    from mer_keras.data.synthetic import SyntheticConfig, default_cache_dir, synthetic_dataset

    cache = default_cache_dir(opts.cache_dir)
    if verify_data:
        from mer_keras.data.datasets import load_dataset

        ds = load_dataset(verify_data, verify_root, strict=False, apex_policy=opts.apex, cache_dir=opts.cache_dir)
        samples = [s for s in ds.samples if s.label in classes]
        with console.status(f"held-out inputs: {ds.name}"):
            failed = prepare(samples, rep, cache, workers=opts.workers)
        samples = [s for i, s in enumerate(samples) if i not in failed]
        if not samples:
            raise ValueError(f"--verify-data {verify_data}: no clip left in the run's classes {list(classes)} "
                             f"({len(ds.samples)} clips, labels {sorted({s.label for s in ds.samples})}, "
                             f"{len(failed)} failed preprocessing)")
        desc = f"{ds.name}: {len(samples)} clips" + (f" ({len(failed)} skipped in preprocessing)" if failed else "")
    elif not opts.data or opts.data == "synthetic":
        seed = opts.seed + 1
        _, samples = synthetic_dataset(SyntheticConfig(subjects=opts.subjects, clips_per_subject=opts.clips, seed=seed),
                                       faces_dir=opts.faces, cache_dir=cache)
        desc = f"new synthetic clips (seed {seed}, {opts.subjects} pseudo-subjects x {opts.clips})"
    else:
        return None, None, "no held-out data (give --verify-data)"
    with console.status(f"held-out inputs: {desc}"):
        x = build_inputs(samples, rep, cache_dir=cache)
    return x, np.array([list(classes).index(s.label) for s in samples]), desc


def export_run(run: str | Path, formats: Sequence[str], console, qat: QATOptions | None = None,
               verify_data: str | None = None, verify_root: str | None = None) -> dict:
    """``mer-keras export``: write ``formats`` of a finished run's final model, verify and record them.

    The run's training data is rebuilt (from the cache) only when needed: for int8 calibration,
    QAT fine-tuning, metadata written before windows were recorded, or verification when no
    held-out data exists. ``metadata.json`` and ``export_report.json`` are rewritten (atomically)
    after each format, so they always describe the files on disk.

    Args:
        run: a run folder with ``model.keras``, ``metadata.json`` and ``config.json``.
        formats: names in :data:`~mer_keras.export.formats.FORMATS`.
        qat: fine-tuning budget for ``tflite_qat`` (augmentation, class weights, batch and seed
            are the run's).
        verify_data, verify_root: held-out database or manifest for runs on real data. Runs with
            the cross-database protocol are verified on their test database.
    Returns:
        {format name: info with "path" and "verification"}.
    Raises:
        ModelFileError: not a finished run folder. ValueError: unknown format, bad config.
    """
    from mer_keras.data.pipeline import RepresentationConfig
    from mer_keras.models.io import ModelFileError, load_model, read_json
    from mer_keras.registry import inference_model
    from mer_keras.train.run import load_run_inputs, options_from_config, window_from_samples
    from mer_keras.train.trainer import predict_proba

    run = Path(run)
    if not (run / "metadata.json").is_file() or not (run / "model.keras").is_file():
        raise ModelFileError(f"{run}: not a finished run folder (model.keras and metadata.json are written last)")
    if not (run / "config.json").is_file():
        raise ModelFileError(f"{run}: no config.json (it records the data and options the model was trained with)")
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown export format(s) {unknown}; expected {list(FORMATS)}")
    meta = read_json(run / "metadata.json")
    config = read_json(run / "config.json")
    try:
        opts = options_from_config(config)
        rep = RepresentationConfig(**config["representation_config"])
        classes = list(meta["classes"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{run}: config.json or metadata.json lacks a field ({type(exc).__name__}: {exc})") from None
    model = inference_model(load_model(run / "model.keras"))
    x_ver, y_ver, desc = heldout_inputs(opts, rep, classes, console, verify_data, verify_root)
    needs_training = (any(FORMATS[f].needs_data for f in formats) or "window" not in meta or x_ver is None)
    x_train = y_train = None
    if needs_training:
        _, _, data, inputs = load_run_inputs(run, console)
        x_train, y_train = inputs.x[inputs.final], inputs.y[inputs.final]
        meta.setdefault("window", window_from_samples(data.samples))
        if x_ver is None and (~inputs.final).any():  # cross-database protocol: the test database is held out
            x_ver, y_ver, desc = inputs.x[~inputs.final], inputs.y[~inputs.final], "the run's test database"
    held_out = x_ver is not None
    if not held_out:
        console.print(f"[yellow]note:[/] {desc}; verifying on the training inputs instead", soft_wrap=True)
        x_ver, y_ver, desc = x_train, y_train, "training inputs (not held out)"
    reference = predict_proba(model, x_ver)
    q = replace(qat or QATOptions(), batch_size=opts.batch_size, flow_input=rep.representation == "flow",
                augment=opts.augment, class_weight=opts.class_weight, seed=opts.seed)
    report_path = run / "export_report.json"
    report = read_json(report_path) if report_path.exists() else {}
    results = {}
    for name in formats:
        fmt = FORMATS[name]
        with console.status(f"exporting {name}"):
            path, info = write_export(model, fmt, run, x_train, y_train, q)
            info["verification"] = {"inputs": desc, "held_out": held_out,
                                    **verify_export(path, fmt, reference, x_ver, y_ver, classes)}
        v = info["verification"]
        size = f"{info['bytes'] / 1e6:.2f} MB" if info["bytes"] >= 1e5 else f"{info['bytes'] / 1e3:.1f} kB"
        console.print(f"{path.name:<22} {size:>10} in {info['seconds']:6.1f} s   max |p - p_keras| "
                      f"{v['max_abs_diff']:.2e}  agreement {v['argmax_agreement']:.3f}  UF1 {v['uf1_candidate']:.3f} "
                      f"(Keras {v['uf1_reference']:.3f})", highlight=False, soft_wrap=True)
        if info.get("float_fallback"):
            console.print(f"  [yellow]integer-only conversion refused ({info['float_fallback']}); float ops allowed[/]",
                          soft_wrap=True)
        if info.get("float_ops"):
            console.print(f"  [yellow]ops left in float:[/] {', '.join(info['float_ops'])}", soft_wrap=True)
        if fmt.quant in ("int8", "qat") and v["uf1_drop_points"] > INT8_UF1_BUDGET_POINTS:
            console.print(f"  [yellow]UF1 {v['uf1_drop_points']:.1f} points below Keras (budget "
                          f"{INT8_UF1_BUDGET_POINTS:.0f})[/]")
        results[name] = {"path": str(path), **info}
        report[path.name] = info
        meta.setdefault("files", {})[path.name] = {k: v for k, v in info.items() if k != "verification"}
        atomic.write_json(report_path, report)
        atomic.write_json(run / "metadata.json", meta)  # after every file: metadata always matches the disk
    return results
