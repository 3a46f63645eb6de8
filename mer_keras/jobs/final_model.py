"""The final-model step of ``mer-keras train``: fit on every training subject, save the model
without optimizer state, export TFLite fp32 and int8 checked against Keras, and write
``metadata.json`` last (its presence marks a complete run).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from mer_keras.data.pipeline import RepresentationConfig
from mer_keras.data.records import Dataset, Sample
from mer_keras.jobs.inputs import Inputs
from mer_keras.jobs.train_options import TrainOptions
from mer_keras.runs import RunFolder


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


def deployment_window(data: Dataset) -> dict | None:
    """The sliding window recorded for video input: from the training clips
    (:func:`window_from_samples`), or the dataset's documented one for ready images without
    frames (its table row's ``window``, e.g. the published composite flow images')."""
    from mer_keras.data.datasets import find_dataset

    window = window_from_samples(data.samples)
    spec = find_dataset(data.name)
    if window is None and spec is not None and spec.window is not None:
        window = dict(spec.window)
    return window


#: Largest accepted |p_tflite - p_keras| for the float32 export.
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
    from mer_keras.factory import inference_model
    from mer_keras.models.inference import predict_proba

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


def final_indices(opts: TrainOptions, groups: Sequence[str]) -> np.ndarray:
    """(M,) int indices of the clips the final model is fitted on: all but a cross-protocol test set."""
    return np.flatnonzero(np.array([g != "test" for g in groups]) if opts.protocol == "cross"
                          else np.ones(len(groups), bool))


def fit_final(opts: TrainOptions, rep: RepresentationConfig, cfg, data: Dataset, inputs: Inputs,
              groups: Sequence[str], run: RunFolder, strategy, console, fitted=None) -> None:
    """Step *final fit*: the model fitted on every training subject (all but a cross-protocol test
    set), saved with its exports and metadata.json (by the chief).

    Args:
        fitted: the final model already trained in a program with the folds
            (:func:`~mer_keras.train.folds.run_folds` with ``final``), or None to fit it here.
    """
    from mer_keras.train.fit import fit_model, weights_fingerprint
    from mer_keras.train.strategy import is_chief

    final = final_indices(opts, groups)
    aus = data.aus if opts.spec.aux_losses else None
    if fitted is not None:
        console.print("the final model was fitted on all training subjects with the folds")
        model = fitted
    else:
        from mer_keras.jobs.inputs import progress_bar
        from mer_keras.train.callbacks import ProgressCallback

        console.print("fitting the final model on all training subjects")
        with progress_bar(console) as prog:
            task = prog.add_task("final model", total=cfg.epochs, info="")
            model = fit_model(inputs.x[final], inputs.y[final], len(data.classes), cfg, strategy,
                              callbacks=[ProgressCallback(prog, task)],
                              aus=[aus[i] for i in final] if aus is not None else None,
                              backup_dir=run.backup_root / "final", classes=data.classes)
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
    from mer_keras.factory import inference_model
    from mer_keras.models.io import save_keras
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
    meta = build_metadata(opts.model, data.classes, asdict(rep), rep.input_shape, data.name, opts.protocol, files,
                          window=deployment_window(data), apex_policy=opts.apex)
    if data.images:  # ready input images: made by whatever made them, not by the preprocessing above
        meta["training_inputs"] = (f"{len(data.images)} ready input images of {data.name} (not made by this "
                                   "pipeline: at inference the preprocessing above makes the input)")
    atomic.write_json(run.path / "metadata.json", meta)
