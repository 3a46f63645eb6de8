"""``mer-keras predict`` and :func:`mer_keras.predict`: classify clips with a trained model.

Steps: find the model and its ``metadata.json`` -> check the output is writable -> turn each
input into the network input the model was trained on (the preprocessing ``metadata.json``
records) -> class probabilities -> a table, and CSV or JSON.

Inputs, each one clip: a video file (decoded once into the cache), a folder of frames, a ready
representation image (e.g. a composite flow PNG: resized, nothing else), two images taken as an
onset / apex pair (``pairs``), or every clip of a dataset (``data`` and ``root``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mer_keras import names
from mer_keras.errors import MissingFileError, ModelFileError, OptionError
from mer_keras.jobs.clip_inputs import clip_inputs, inputs_x, note_long_clips
from mer_keras.jobs.schema import option
from mer_keras.jobs.trained import MODEL_FILES, find_model  # noqa: F401  (re-exported: predict's model lookup)
from mer_keras.names import APEX_POLICIES

if TYPE_CHECKING:  # the options are read by `mer-keras --help`, which must not load pandas or TensorFlow
    import pandas as pd


@dataclass
class PredictOptions:
    """Options of ``mer-keras predict``."""

    model: str = option(help="Run folder, a preset's name (e.g. ststnet_megc2019_composite; `mer-keras models "
                             "--presets`), or a .keras / .tflite file with metadata.json beside it.", argument=True)
    inputs: list[str] | None = option(None, "Videos, frame folders, or ready representation images (with --pairs: "
                                            "onset / apex image pairs). Each is one clip.", argument=True)
    onset: int | None = option(None, "Onset frame number, as in the frame file names (video: 1 = first frame); "
                                     "default: the first frame.", min=0)
    apex: int | None = option(None, "Apex frame number; default: chosen by --apex-policy.", min=0)
    offset: int | None = option(None, "Offset frame number; default: the last frame.", min=0)
    apex_policy: str = option("spot", "Without --apex: spot (the frame of largest motion against the onset) or "
                                      "midpoint of onset..offset.", choices=lambda: APEX_POLICIES)
    pairs: bool = option(False, "Read image inputs two at a time as onset / apex frames of one clip.")
    data: str | None = option(None, "Predict every clip of a dataset instead (a name of `mer-keras train --data`).",
                              choices=lambda: names.offered("datasets"))
    root: str | None = option(None, "The dataset's folder (or manifest CSV).")
    strict: bool = option(False, "Stop at the first bad clip of --data instead of skipping it.")
    spot: bool = option(False, "Treat each video or frame folder as a long recording: spot its micro- and "
                               "macro-expressions (as `mer-keras spot`), then classify each spotted micro-expression; "
                               "one row per spotted interval.")
    fps: float | None = option(None, "Frame rate of frame folders with --spot (a video states its own).", above=0)
    spot_method: str = option("analytic", "With --spot: keep candidates by the analytic rules or the learned second "
                                          "stage (as `mer-keras spot --method`).",
                              choices=lambda: ("analytic", "learned"))
    out: str | None = option(None, "Write the predictions to this .csv or .json file (checked before any work).")
    cache_dir: str | None = option(None, "Cache folder (default $MER_CACHE_DIR or ~/.cache/mer_keras).")
    allow_modified: bool = option(False, "Use a model file whose sha256 differs from the one metadata.json records "
                                         "(changed since it was exported), with a warning; default: refuse it.")


def check_out(out: str | None) -> None:
    """Refuse an output file that is not ``.csv`` / ``.json`` or cannot be written, before any work.

    An existing file is replaced only when it holds predictions (a table with a ``predicted``
    column, or the JSON this command writes): a run's ``results.json`` or ``predictions.csv`` of
    the LOSO folds, or any other file, is never overwritten.

    Raises:
        OptionError: wrong suffix, a folder, a path whose folder cannot be written, or an existing
            file that is not a predictions file (named).
    """
    from mer_keras.jobs.outputs import check_writable

    if out is None:
        return
    path = Path(out)
    check_writable(path, "--out", file=True)
    if path.suffix not in (".csv", ".json"):
        raise OptionError(f"--out {out}: expected a .csv or .json file")
    if path.is_file() and not _holds_predictions(path):
        raise OptionError(f"--out {out}: an existing file that this command did not write (its content would be "
                          "lost); give a new file name")


def _holds_predictions(path: Path) -> bool:
    """Whether ``path`` is a file ``predict --out`` wrote: JSON with ``predictions``, or a CSV whose
    header has ``input`` and ``predicted`` (not the LOSO ``predictions.csv`` of a run)."""
    import json

    try:
        with open(path, encoding="utf-8") as fh:
            if path.suffix == ".json":
                data = json.load(fh)
                return isinstance(data, dict) and {"model", "classes", "predictions"} <= set(data)
            header = fh.readline().strip().split(",")
    except (OSError, ValueError):
        return False
    return {"input", "predicted"} <= set(header)


def run_predict(opts: PredictOptions, console=None, warn=None) -> pd.DataFrame:
    """Classify every input of ``opts`` with the model; print a table; write ``opts.out``.

    The model is opened and checked against its ``metadata.json`` (sha256, outputs against
    classes: :func:`mer_keras.jobs.trained.open_model`) before any input is prepared; ``warn``
    receives what ``opts.allow_modified`` lets through (default: a yellow line on ``console``).

    Returns:
        One row per clip, in input order: ``input``, ``onset``, ``apex``, ``offset`` (frame numbers
        used; None for a ready image), ``predicted`` (class name), one ``p_<class>`` column per
        class (float, summing to 1), and for ``--data`` the clip's ``subject``, ``database`` and
        ``label``.
    Raises:
        OptionError: no input, inputs and ``data`` together, or a bad ``out``. ModelFileError,
            MissingFileError, DataError: an unusable model, metadata or input (named).
    """
    import pandas as pd
    from rich.console import Console

    from mer_keras.jobs.schema import validate
    from mer_keras.jobs.trained import console_warning, open_model
    from mer_keras.preprocess.cache import default_cache_dir
    from mer_keras.preprocess.representation import RepresentationConfig

    validate(opts)
    console = console or Console()
    if bool(opts.inputs) == bool(opts.data):
        raise OptionError("give INPUT files or folders, or --data DB --root PATH (one of the two)")
    model_path, meta = find_model(opts.model)
    check_out(opts.out)
    default_cache_dir(opts.cache_dir)  # a cache path that cannot be a folder fails before any work
    try:
        rep = RepresentationConfig.from_dict(dict(meta["preprocessing"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{model_path.parent / 'metadata.json'}: invalid preprocessing ({exc})") from None
    if opts.spot and (opts.data or opts.pairs):
        raise OptionError("--spot reads long videos or frame folders given as INPUT (not --data or --pairs)")
    trained = open_model(model_path, opts.allow_modified, warn or console_warning(console))  # before any input
    classes = trained.classes
    cache = default_cache_dir(opts.cache_dir)
    if meta.get("training_inputs"):
        console.print(f"[yellow]note:[/] trained on {meta['training_inputs']}", soft_wrap=True)
    if opts.spot:
        return _finish(opts, spotted_table(opts, model_path, meta, cache, console, trained), model_path, classes,
                       console, trained.warnings)
    if opts.data:
        rows, x = _dataset_rows(opts, rep, cache, meta, console)
    else:
        rows, items = clip_inputs(opts, rep, cache)
        note_long_clips(items, meta, console)
        x = inputs_x(items, rep, cache)
    probs = trained.predict(x)
    table = pd.DataFrame(rows)
    for col in ("onset", "apex", "offset"):
        if col in table:
            table[col] = table[col].astype("Int64")  # frame numbers; <NA> for a ready image or a pair
    table["predicted"] = [classes[k] for k in probs.argmax(1)]
    for k, name in enumerate(classes):
        table[f"p_{name}"] = probs[:, k].astype(float)
    return _finish(opts, table, model_path, classes, console, trained.warnings)


def _finish(opts: PredictOptions, table, model_path: Path, classes: list[str], console,
            warnings: list[str] | None = None):
    """Print the table and write ``opts.out`` (a JSON file also lists ``warnings``: what
    ``--allow-modified`` let through); return the table."""
    from rich.table import Table

    from mer_keras import atomic

    shown = Table(title=f"{model_path} ({len(table)} {'interval' if opts.spot else 'clip'}(s))", show_lines=False)
    extra = ("type", "onset", "apex", "offset") if opts.spot else ()
    for col in ("input", *extra, "predicted", *[f"p_{c}" for c in classes]):
        shown.add_column(col, justify="left" if col in ("input", "type", "predicted") else "right")
    for _, row in table.iterrows():
        shown.add_row(str(row["input"]), *[str(row[c]) for c in extra], str(row["predicted"] or "-"),
                      *["-" if row[f"p_{c}"] != row[f"p_{c}"] else f"{row[f'p_{c}']:.3f}" for c in classes])
    console.print(shown)
    if opts.out:
        if opts.out.endswith(".json"):
            atomic.write_json(opts.out, {"model": str(model_path), "classes": classes,
                                         **({"warnings": list(warnings)} if warnings else {}),
                                         "predictions": table.to_dict(orient="records")})
        else:
            with atomic.atomic_path(opts.out) as tmp:
                table.to_csv(tmp, index=False)
        console.print(f"predictions written to {opts.out}", soft_wrap=True)
    return table


def spotted_table(opts: PredictOptions, model_path: Path, meta: dict, cache: Path, console, trained=None):
    """One row per interval spotted in each input (a long video or frame folder), micro-expressions classified.

    ``trained``: the model opened by :func:`mer_keras.jobs.trained.open_model` (default: opened
    here from ``model_path``, checked against its metadata.json), loaded once for every input.

    Columns: ``input``, ``type`` (micro / macro), ``onset``, ``apex``, ``offset`` (frame numbers as in
    the file names; a video's from 1), ``onset_s``, ``offset_s``, ``score``, ``predicted`` (class of a
    micro-expression, "" for a macro-expression) and ``p_<class>`` (NaN for a macro-expression).

    Raises:
        MissingFileError: an input that does not exist. DataError: an input that is not a video or
            a frame folder, or a frame folder without ``fps`` (named).
    """
    import cv2
    import numpy as np
    import pandas as pd

    from mer_keras.data.spotting import SpotVideo, list_frames
    from mer_keras.errors import DataError
    from mer_keras.jobs.spot_steps import recognise, spot_config, spot_video
    from mer_keras.jobs.trained import open_model
    from mer_keras.preprocess.video import extract_frames, is_video

    trained = trained or open_model(model_path, opts.allow_modified)
    classes, rows = list(meta["classes"]), []
    cfg = spot_config(method=opts.spot_method)
    for name in opts.inputs or []:
        p = Path(name)
        if not p.exists():
            raise MissingFileError(f"{name}: no such video or frame folder")
        if is_video(p):
            cap = cv2.VideoCapture(str(p))
            fps = cap.get(cv2.CAP_PROP_FPS) or opts.fps
            cap.release()
            folder = extract_frames(p, cache)
        elif p.is_dir():
            fps, folder = opts.fps, p
        else:
            raise DataError(f"{name}: --spot reads a long video or a frame folder, not this file")
        if not fps or not np.isfinite(fps):
            raise DataError(f"{name}: frames carry no frame rate; give --fps")
        frames, numbers = list_frames(folder)
        video = SpotVideo(str(name), "input", frames, float(fps), (), "input", frame_numbers=numbers)
        with console.status(f"spotting {name} ({len(video.frames)} frames at {fps:g} fps)"):
            found, info = spot_video(video, cfg)
        if not found:
            console.print(f"{name}: {cfg.why_nothing(len(video.frames), float(fps), info['no_face_or_edge'])}",
                          soft_wrap=True, highlight=False)
        micro = [i for i in found if i.type == "micro"]
        probs = recognise(trained.predict, meta, video, micro)
        for it in found:
            row = {"input": str(name), **video.place(it), "predicted": ""}
            pr = probs[micro.index(it)] if it.type == "micro" else np.full(len(classes), np.nan)
            if it.type == "micro":
                row["predicted"] = classes[int(np.argmax(pr))]
            row.update({f"p_{c}": float(v) for c, v in zip(classes, pr)})
            rows.append(row)
    return pd.DataFrame(rows, columns=["input", "type", "onset", "apex", "offset", "onset_s", "offset_s", "score",
                                       "predicted", *[f"p_{c}" for c in classes]])


def _dataset_rows(opts: PredictOptions, rep, cache, meta: dict, console):
    """Rows and inputs of every clip of ``--data``, prepared as for training."""
    from mer_keras.jobs.inputs import build_dataset_inputs, load_data_for_model

    ds = load_data_for_model(opts.data, opts.root, opts.strict, opts.apex_policy, opts.cache_dir, meta, console)
    inputs = build_dataset_inputs(ds, rep, console, cache_dir=cache, strict=opts.strict)
    rows = [{"input": key, "subject": r["subject"], "database": r["database"], "label": r["label"]}
            for key, r in zip(ds.keys, ds.rows)]
    return rows, inputs.x


def predict(model: str | Path, inputs=(), *, onset: int | None = None, apex: int | None = None,
            offset: int | None = None, apex_policy: str = "spot", pairs: bool = False, data: str | None = None,
            root: str | None = None, spot: bool = False, fps: float | None = None, spot_method: str = "analytic",
            out: str | None = None, cache_dir: str | None = None, quiet: bool = True, allow_modified: bool = False):
    """Classify clips with a trained model, preprocessed as it was trained (the public API of
    ``mer-keras predict``)::

        import mer_keras
        table = mer_keras.predict("saved_models/ststnet_megc2019_composite", ["clip.mp4", "frames/EP02_01f"])
        table[["input", "predicted", "p_negative", "p_positive", "p_surprise"]]

    Args:
        model: a run folder, a released model folder, or a ``.keras`` / ``.tflite`` file with
            ``metadata.json`` beside it.
        inputs: a path or a list of paths: videos, frame folders (frames sorted by the number in
            their names), ready representation images (each fed as it is, resized to the model's
            input), or with ``pairs`` onset / apex images two at a time. Each is one clip.
        onset, apex, offset: frame numbers as in the frame file names (a video's frames are
            numbered from 1); default: first frame, ``apex_policy``, last frame.
        apex_policy: ``spot`` (largest motion against the onset) or ``midpoint``.
        data, root: predict every clip of a dataset instead of ``inputs``.
        spot: each input is a long recording: spot its micro- and macro-expressions and classify
            each micro-expression (one row per interval; see :func:`spotted_table`). fps: the frame
            rate of frame folders with ``spot``. spot_method: ``analytic`` or ``learned`` (the
            spotter's second stage, :mod:`mer_keras.runtime.spot_stage`).
        out: also write the table to this ``.csv`` or ``.json`` file (atomically).
        cache_dir: where decoded videos and preprocessed clips are kept.
        quiet: print nothing (else the table, as the command does).
        allow_modified: use a model file whose sha256 differs from the one its metadata.json
            records, with a :class:`~mer_keras.runtime.metadata.ModelModifiedWarning` (quiet) or a
            printed warning; by default such a file is refused (``ModelFileError``).
    Returns:
        ``pandas.DataFrame``, one row per clip in input order: ``input``, ``onset``, ``apex``,
        ``offset`` (frame numbers used), ``predicted`` (class name) and ``p_<class>`` (float64
        probabilities summing to 1 per row); with ``data`` also ``subject``, ``database``, ``label``.
    Raises:
        OptionError, ModelFileError, MissingFileError, DataError: bad options, model, metadata or
            input (the message names it); ModelFileError also for a model file that is not what
            its metadata.json records (sha256, outputs against classes, classes not unique names).
    """
    import io

    from rich.console import Console

    from mer_keras.jobs.schema import validate

    if isinstance(inputs, (str, os.PathLike)):  # one path: one input, not its characters
        inputs = [inputs]
    if inputs is None or not isinstance(inputs, (list, tuple)) or not all(
            isinstance(i, (str, os.PathLike)) for i in inputs):
        raise OptionError(f"inputs: expected a path or a list of paths (videos, frame folders, images), got "
                          f"{type(inputs).__name__}" + (f" holding {sorted({type(i).__name__ for i in inputs})}"
                                                         if isinstance(inputs, (list, tuple)) else ""))
    opts = PredictOptions(model=str(model), inputs=[str(i) for i in inputs] or None, onset=onset, apex=apex,
                          offset=offset, apex_policy=apex_policy, pairs=pairs, data=data, root=root, spot=spot,
                          fps=fps, spot_method=spot_method, out=out, cache_dir=cache_dir,
                          allow_modified=allow_modified)
    validate(opts)
    if quiet:  # the warning of allow_modified as a Python warning (the console is discarded)
        from mer_keras.runtime.metadata import ModelModifiedWarning

        def warn(message: str) -> None:
            import warnings

            warnings.warn(message, ModelModifiedWarning, stacklevel=4)

        return run_predict(opts, Console(file=io.StringIO()), warn)
    return run_predict(opts)
