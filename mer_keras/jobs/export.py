"""``mer-keras export RUN``: write a finished run's final model in the export formats, verify and record them.

Every export is written next to the run's ``metadata.json`` and verified against the Keras model
on held-out inputs (``export_report.json``); the library part (one format, one verification) is
:mod:`mer_keras.export.exporter`.

Several exports of one run may run at once (``--quant fp16`` and ``--quant dynamic`` in two
shells): each converts and verifies into a staging folder of its own, ``RUN/.export-<host>-<pid>-XXXX``,
then, holding the run's lock (:meth:`mer_keras.runs.RunFolder.lock`, waited for), moves its file
into place and merges its entry into ``metadata.json`` and ``export_report.json`` (read, update,
write), so every export ends in both files and a file on disk always matches its sha256 there.
Temporary files and folders of an export that was killed (a staging folder whose process is gone,
the ``.saved_model.XXXX`` of older versions) are removed by the next export of the run.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np

from mer_keras.data.composite import parse_class_map
from mer_keras.errors import DataError, ModelFileError, OptionError
from mer_keras.export.exporter import INT8_UF1_BUDGET_POINTS, QATOptions, verify_export, write_export
from mer_keras.export.formats import FORMATS, find_format, format_names, tflite_quants
from mer_keras.jobs.export_files import _install, clean_stale_temporaries, record_export, run_lock
from mer_keras.jobs.schema import option, validate
from mer_keras.jobs.trained import console_warning

#: The export library's QAT defaults (fine-tuning epochs and rate): the options below take them from there.
_QAT = QATOptions()


@dataclass
class ExportOptions:
    """Options of ``mer-keras export``."""

    run: str = option(help="Run folder written by mer-keras train.", argument=True)
    format: str = option("tflite", "Export format; 'all' writes every row of the table.",
                         choices=lambda: (*format_names(), "all"))
    quant: str | None = option(None, "TFLite quantization (default none = float32).", choices=tflite_quants)
    qat_epochs: int = option(_QAT.epochs, "Quantization-aware fine-tuning epochs (--quant qat).", min=1, max=10_000)
    qat_lr: float = option(_QAT.lr, "Learning rate of the QAT fine-tuning.", above=0.0)
    verify_data: str | None = option(None, "Held-out database or manifest to verify on (runs on real data).")
    verify_root: str | None = option(None, "Root of --verify-data.")
    class_map: dict | str | None = option(None, "Map --verify-data labels to the run's classes: composite, or "
                                                "FROM=TO (repeatable; FROM= leaves a label out). Labels outside the "
                                                "classes are otherwise an error.", cli_type=list[str],
                                          parse=parse_class_map)
    allow_modified: bool = option(False, "Export a model.keras whose sha256 differs from the one metadata.json "
                                         "records (changed since it was saved), with a warning; default: refuse it.")

    def format_names(self) -> list[str]:
        """The rows of the formats table to write.

        Raises:
            OptionError: ``--format all`` with ``--quant``, or a format/quantization pair the table lacks.
        """
        if self.format == "all":
            if self.quant is not None:
                raise OptionError("--format all writes every quantization; leave --quant out")
            return list(FORMATS)
        return [find_format(self.format, self.quant).name]


def export(opts: ExportOptions, console) -> dict:
    """Steps: resolve the formats -> :func:`export_run` (rebuild inputs where needed, write, verify, record)."""
    validate(opts)
    names = opts.format_names()
    return export_run(opts.run, names, console, qat=QATOptions(epochs=opts.qat_epochs, lr=opts.qat_lr),
                      verify_data=opts.verify_data, verify_root=opts.verify_root, class_map=opts.class_map,
                      allow_modified=opts.allow_modified)


def heldout_inputs(opts, rep, classes: Sequence[str], console, verify_data: str | None = None,
                   verify_root: str | None = None,
                   class_map: dict | str | None = None) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    """Inputs the exported model never saw, for verification.

    Synthetic runs: a new synthetic set (seed + 1: new pseudo-subjects and clips, the run's size).
    Database runs: ``verify_data`` (a database name or manifest) when given, its labels mapped to
    the run's classes by ``class_map`` (:func:`mer_keras.data.composite.apply_class_map`: a label
    neither a class nor mapped is an error, labels the map leaves out are counted); clips that
    fail preprocessing (no face, unreadable frames) are left out, as in training, and counted.

    Returns:
        (x, y, description); x is None when no held-out data is available (the caller falls back).
    Raises:
        OptionError: labels of ``verify_data`` outside the run's classes and not mapped (named).
        DataError: ``verify_data`` has no usable clip in the run's classes (names both).
    """
    from mer_keras.data.datasets import dataset_spec, load_synthetic
    from mer_keras.data.pipeline import build_inputs, prepare
    from mer_keras.data.synthetic import SyntheticConfig
    from mer_keras.preprocess.cache import default_cache_dir

    cache = default_cache_dir(opts.cache_dir)
    if verify_data:
        from mer_keras.data.composite import apply_class_map
        from mer_keras.data.datasets import load_dataset

        ds = load_dataset(verify_data, verify_root, strict=False, apex_policy=opts.apex, cache_dir=opts.cache_dir)
        ds, left_out = apply_class_map(ds, classes, class_map, f"--verify-data {verify_data}")
        samples = list(ds.samples)
        with console.status(f"held-out inputs: {ds.name}"):
            failed = prepare(samples, rep, cache, workers=opts.workers)
        samples = [s for i, s in enumerate(samples) if i not in failed]
        if not samples:
            raise DataError(f"--verify-data {verify_data}: no clip left in the run's classes {list(classes)} "
                             f"({len(ds.samples)} clips, labels {sorted({s.label for s in ds.samples})}, "
                             f"{len(failed)} failed preprocessing)")
        desc = (f"{ds.name}: {len(samples)} clips" + (f" ({len(failed)} skipped in preprocessing)" if failed else "")
                + "".join(f", {n} labelled {k} left out by --class-map" for k, n in sorted(left_out.items())))
    elif not opts.data or dataset_spec(opts.data).generated:
        seed = opts.seed + 1
        samples = load_synthetic(SyntheticConfig(subjects=opts.subjects, clips_per_subject=opts.clips, seed=seed),
                                 faces=opts.faces, cache_dir=cache).samples
        desc = f"new synthetic clips (seed {seed}, {opts.subjects} pseudo-subjects x {opts.clips})"
    else:
        return None, None, "no held-out data (give --verify-data)"
    with console.status(f"held-out inputs: {desc}"):
        x = build_inputs(samples, rep, cache_dir=cache)
    return x, np.array([list(classes).index(s.label) for s in samples]), desc


def recorded_options(config: dict, source):
    """The training options a run's config.json records, validated, with every recipe option it
    does not record (batch size, augmentation: a hand-written or older config) filled as training
    fills it (:func:`mer_keras.jobs.resolve.apply_recipe`).

    Raises:
        OptionError: a recorded value of the wrong type or out of range, named with ``source``.
        UnknownNameError: an unknown model or recipe.
    """
    from mer_keras.jobs.resolve import apply_recipe
    from mer_keras.jobs.train_options import options_from_config

    opts = options_from_config(config, source)
    return apply_recipe(opts, opts.spec.recipe(opts.recipe) if opts.recipe else {})


def export_run(run: str | Path, formats: Sequence[str], console, qat: QATOptions | None = None,
               verify_data: str | None = None, verify_root: str | None = None,
               class_map: dict | str | None = None, allow_modified: bool = False) -> dict:
    """``mer-keras export``: write ``formats`` of a finished run's final model, verify and record them.

    The run's training data is rebuilt (from the cache) only when needed: for int8 calibration,
    QAT fine-tuning, metadata written before windows were recorded, or verification when no
    held-out data exists. ``model.keras`` is checked against ``metadata.json`` first (sha256,
    outputs against classes: :func:`mer_keras.models.io.load_model`). Each format is converted and
    verified in this export's staging folder, then moved into the run and merged into
    ``metadata.json`` and ``export_report.json`` under the run's lock (:func:`record_export`), so
    they always describe the files on disk, whatever other exports of the run do meanwhile.

    Args:
        run: a run folder with ``model.keras``, ``metadata.json`` and ``config.json``.
        formats: names in :data:`~mer_keras.export.formats.FORMATS`.
        qat: fine-tuning budget for ``tflite_qat`` (augmentation, class weights, batch and seed
            are the run's).
        verify_data, verify_root: held-out database or manifest for runs on real data. Runs with
            the cross-database protocol are verified on their test database.
        allow_modified: export a model.keras whose sha256 differs from metadata.json's, with a
            warning (its outputs must still match the classes).
    Returns:
        {format name: info with "path" and "verification"}.
    Raises:
        ModelFileError: not a finished run folder, bad config, or a model.keras that is not what
            metadata.json records (named). OptionError: unknown format. RunFolderError: another
            process holds the run's lock for over :data:`LOCK_WAIT_SECONDS`.
    """
    from mer_keras.factory import inference_model
    from mer_keras.jobs.final_model import deployment_window
    from mer_keras.jobs.run_inputs import load_run_inputs
    from mer_keras.models.inference import predict_proba
    from mer_keras.models.io import load_model
    from mer_keras.presets import resolve
    from mer_keras.train.tfdata import make_dataset

    run = resolve(run)
    opts, rep, meta, classes = check_run(run, formats)
    from mer_keras.preprocess.cache import default_cache_dir

    default_cache_dir(opts.cache_dir)  # a cache path that is a file fails here, not after loading the model
    model = inference_model(load_model(run / "model.keras", allow_modified, warn=console_warning(console)))
    with run_lock(run):  # what killed exports left is removed before this one adds its own
        cleaned = clean_stale_temporaries(run)
    if cleaned:
        console.print(f"removed what killed exports left in {run}: {', '.join(cleaned)}", soft_wrap=True,
                      highlight=False)
    x_ver, y_ver, desc = heldout_inputs(opts, rep, classes, console, verify_data, verify_root, class_map)
    needs_training = (any(FORMATS[f].needs_data for f in formats) or "window" not in meta or x_ver is None)
    x_train = y_train = None
    window = ...  # metadata.json's window, left as it is unless it records none
    if needs_training:
        _, _, data, inputs, final = load_run_inputs(run, console)
        x_train, y_train = inputs.x[final], inputs.y[final]
        if "window" not in meta:
            window = deployment_window(data)
        if x_ver is None and (~final).any():  # cross-database protocol: the test database is held out
            x_ver, y_ver, desc = inputs.x[~final], inputs.y[~final], "the run's test database"
    held_out = x_ver is not None
    if not held_out:
        console.print(f"[yellow]note:[/] {desc}; verifying on the training inputs instead", soft_wrap=True)
        x_ver, y_ver, desc = x_train, y_train, "training inputs (not held out)"
    reference = predict_proba(model, x_ver)
    q = replace(qat or QATOptions(), class_weight=opts.class_weight, seed=opts.seed,
                batches=partial(make_dataset, batch_size=opts.batch_size, shuffle=True, augment=opts.augment,
                                flow_input=rep.representation == "flow", seed=opts.seed))
    results = {}
    staging = Path(tempfile.mkdtemp(prefix=f".export-{socket.gethostname()}-{os.getpid()}-", dir=run))
    try:
        for name in formats:
            results[name] = _export_one(model, FORMATS[name], run, staging, x_train, y_train, q, reference,
                                        x_ver, y_ver, classes, desc, held_out, window, console)
    finally:  # a killed process leaves it to the next export (clean_stale_temporaries)
        shutil.rmtree(staging, ignore_errors=True)
    return results


def check_run(run: Path, formats: Sequence[str]):
    """Step *check the run*: a finished run folder (not a released preset) whose files and outputs
    can be written, before any work.

    Returns:
        (recorded options, :class:`~mer_keras.preprocess.representation.RepresentationConfig`,
        metadata.json's dict, the class names).
    Raises:
        ModelFileError: not a finished run folder, or config.json / metadata.json lacking a field
            or with bad classes (named). OptionError: a preset, an unknown format, an unwritable
            output, or a recorded option of the wrong type.
    """
    from mer_keras.data.pipeline import RepresentationConfig
    from mer_keras.jobs.outputs import check_writable, not_a_folder
    from mer_keras.models.io import read_json
    from mer_keras.presets import PRESETS_DIR
    from mer_keras.runtime.metadata import check_classes

    if run.is_dir() and run.resolve().parent == PRESETS_DIR:
        shipped = sorted(p.name for p in run.glob("*.tflite"))
        raise OptionError(f"{run}: a released preset, shipped with its exports ({', '.join(shipped) or 'none'}); "
                          f"to write other formats, copy it first (cp -r {run} runs/{run.name}) and export the copy")
    if not run.is_dir():
        raise ModelFileError(f"{run}: {not_a_folder(run)}; expected a finished run folder "
                             "(model.keras, metadata.json, config.json)")
    if not (run / "metadata.json").is_file() or not (run / "model.keras").is_file():
        raise ModelFileError(f"{run}: not a finished run folder (model.keras and metadata.json are written last)")
    if not (run / "config.json").is_file():
        raise ModelFileError(f"{run}: no config.json (it records the data and options the model was trained with)")
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise OptionError(f"unknown export format(s) {unknown}; expected {list(FORMATS)}")
    check_writable(run, "RUN")  # the exports are written beside the model, before any work
    for name in formats:
        fmt = FORMATS[name]  # e.g. a folder in the way of a file
        check_writable(run / fmt.filename, "RUN", file=not fmt.exporter.folder)
    meta = read_json(run / "metadata.json")
    config = read_json(run / "config.json")
    if (run / "export_report.json").exists():
        read_json(run / "export_report.json")  # a bad report fails before the conversion
    try:
        opts = recorded_options(config, run / "config.json")
        rep = RepresentationConfig(**config["representation_config"])
        classes = check_classes(meta["classes"], run / "metadata.json")
    except (OptionError, ModelFileError):
        raise  # a recorded option of the wrong type or out of range, or bad classes, named with its file and key
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{run}: config.json or metadata.json lacks a field "
                             f"({type(exc).__name__}: {exc})") from None
    return opts, rep, meta, classes


def _export_one(model, fmt, run: Path, staging: Path, x_train, y_train, q: QATOptions, reference, x_ver, y_ver,
                classes: Sequence[str], desc: str, held_out: bool, window, console) -> dict:
    """One format of :func:`export_run`: written and verified in ``staging`` (the run's own
    ``model.keras`` where it is), then moved into ``run`` and recorded under the run's lock.

    Returns:
        The format's info with ``path`` (in the run) and ``verification``.
    """
    with console.status(f"exporting {fmt.name}"):
        # an in-place format (Keras) is the run's model.keras itself, kept where it is
        path, info = write_export(model, fmt, run if fmt.exporter.in_place else staging, x_train, y_train, q)
        info["verification"] = {"inputs": desc, "held_out": held_out,
                                **verify_export(path, fmt, reference, x_ver, y_ver, classes)}
    with run_lock(run):  # the file and its entries change together: never a file metadata.json does not describe
        if path.parent != run:
            path = _install(path, run / fmt.filename)
        record_export(run, path.name, info, window)
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
    return {"path": str(path), **info}
