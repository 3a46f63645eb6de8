"""A trained model to use: its file in a run or released folder, its ``metadata.json``, and the
model opened and checked against it.

Shared by ``predict``, ``evaluate`` and ``spot`` (light imports only: the command line's help loads this).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mer_keras.errors import MissingFileError, ModelFileError

#: Model files a folder is searched for, in this order.
MODEL_FILES = ("model.keras", "model_fp32.tflite", "model_int8.tflite")


def find_model(target: str | Path) -> tuple[Path, dict]:
    """The model file to run and its ``metadata.json`` (read, ``classes`` and ``files`` checked).

    A folder gives its ``model.keras``, else ``model_fp32.tflite``, else ``model_int8.tflite``; a
    name that is not a path is a preset's folder (:mod:`mer_keras.presets`).

    Raises:
        MissingFileError: nothing at ``target``. ModelFileError: no model file in the folder, not a
            ``.keras`` / ``.tflite`` file, no readable ``metadata.json`` beside it, or one without
            ``classes`` and ``preprocessing``, with ``classes`` that are not a list of unique
            non-empty names, or with a malformed sha256 (named).
    """
    from mer_keras.models.io import read_json
    from mer_keras.presets import resolve, unknown_note
    from mer_keras.runs import WEIGHTS_FILE
    from mer_keras.runtime.metadata import check_classes, check_files

    p = resolve(target)
    if p.is_dir():
        found = [p / name for name in MODEL_FILES if (p / name).is_file()]
        if not found:
            weights = " (it holds initial weights for --init-from, not a classifier)" if (
                p / WEIGHTS_FILE).is_file() else ""
            raise ModelFileError(f"{p}: no {', '.join(MODEL_FILES)} to predict with{weights}")
        p = found[0]
    elif p.is_symlink() and not p.exists():
        raise MissingFileError(f"{p}: a symbolic link to nothing (or a loop of links), not a model file or folder")
    elif not p.exists():
        raise MissingFileError(f"{p}: no such model file or folder{unknown_note(p)}")
    if p.suffix not in (".keras", ".tflite"):
        raise ModelFileError(f"{p}: expected a .keras or .tflite model (or a run folder)")
    meta_path = p.parent / "metadata.json"
    if not meta_path.exists():
        raise ModelFileError(f"{meta_path} is missing: it tells the classes and the input preprocessing")
    meta = read_json(meta_path)
    for key in ("classes", "preprocessing"):
        if key not in meta:
            raise ModelFileError(f"{meta_path}: no {key!r} field")
    check_classes(meta["classes"], meta_path)
    check_files(meta.get("files"), meta_path)
    return p, meta


@dataclass
class TrainedModel:
    """A model file opened and checked against its ``metadata.json`` (:func:`open_model`).

    Attributes:
        path: the file. model: the ``keras.Model`` or :class:`~mer_keras.runtime.tflite.TFLiteModel`.
        classes: metadata.json's class names, one per output.
        warnings: what ``allow_modified`` let through (a sha256 other than metadata.json's), for
            the command's outputs.
    """

    path: Path
    model: Any
    classes: list[str]
    warnings: list[str] = field(default_factory=list)

    def predict(self, x) -> Any:
        """(N, K) float32 class probabilities of (N, ...) float32 inputs in [0, 255], K = ``len(classes)``."""
        if self.path.suffix == ".tflite":
            return self.model.predict(x)
        from mer_keras.models.inference import predict_proba

        return predict_proba(self.model, x)


def open_model(path: str | Path, allow_modified: bool = False,
               warn: Callable[[str], None] | None = None) -> TrainedModel:
    """Open a ``.keras`` or ``.tflite`` file checked against the ``metadata.json`` beside it.

    Each file is hashed once, before it is parsed (:func:`mer_keras.runtime.metadata.verify_model_file`),
    and its outputs are counted against ``classes`` once it is open; a Keras model is loaded here
    (TensorFlow), so a wrong model fails before any input is prepared.

    Args:
        path: the model file. allow_modified: use a file whose sha256 differs from the recorded
            one, with a warning (``--allow-modified``). warn: where that warning goes (default
            :func:`warnings.warn`).
    Returns:
        The :class:`TrainedModel`.
    Raises:
        ModelFileError: no metadata.json beside the file, or any check of
            :func:`mer_keras.models.io.load_model` / :func:`mer_keras.runtime.tflite.open_checked`
            (each names the file).
    """
    from mer_keras.models.io import metadata_beside

    path = Path(path)
    given: list[str] = []

    def record(message: str) -> None:
        given.append(message)
        if warn is None:
            import warnings

            from mer_keras.runtime.metadata import ModelModifiedWarning

            warnings.warn(message, ModelModifiedWarning, stacklevel=3)
        else:
            warn(message)

    beside = metadata_beside(path)
    if beside is None or "classes" not in beside[1]:
        raise ModelFileError(f"{path.parent / 'metadata.json'} is missing or has no 'classes' field: it tells the "
                             "classes of the model's outputs")
    meta_path, meta = beside
    if path.suffix == ".tflite":
        from mer_keras.runtime.tflite import open_checked

        model = open_checked(path, meta["classes"], meta.get("files"), meta_path, allow_modified, record)
    else:
        from mer_keras.models.io import load_model

        model = load_model(path, allow_modified, warn=record)
    return TrainedModel(path, model, list(meta["classes"]), given)


def console_warning(console) -> Callable[[str], None]:
    """A ``warn`` callback printing one yellow ``warning:`` line on ``console`` (rich markup escaped)."""
    def warn(message: str) -> None:
        from rich.markup import escape

        console.print(f"[yellow]warning:[/] {escape(message)}", soft_wrap=True, highlight=False)

    return warn


def find_models(target: Path) -> tuple[Path, dict[str, Path]]:
    """The run folder and the model files to score in it.

    Raises:
        ModelFileError: nothing to score, or no metadata.json next to the model.
    """
    if target.is_dir():
        from mer_keras.export.formats import FORMATS

        folder = target
        files = {f.filename: target / f.filename for f in FORMATS.values()
                 if f.format in ("keras", "tflite") and (target / f.filename).is_file()}
    elif target.is_file():
        folder, files = target.parent, {target.name: target}
    else:
        raise MissingFileError(f"{target}: no such run folder or model file")
    if not files:
        raise ModelFileError(f"{target}: no model.keras or .tflite file to evaluate")
    if not (folder / "metadata.json").exists():
        raise ModelFileError(f"{folder / 'metadata.json'} is missing: "
                             "it tells the classes and the input representation")
    return folder, files


def check_model_files(target: str, allow_modified: bool = False, warn=None) -> dict[str, TrainedModel]:
    """Open every model file ``evaluate`` would score, checked, before the evaluation set is built.

    A truncated, foreign or changed file (a sha256 other than ``metadata.json`` records), a model
    whose outputs are not metadata.json's classes, or a TFLite model whose input is not the one
    metadata.json describes, is then reported at once rather than after the (possibly long)
    generation and preprocessing of the evaluation clips. Each file is hashed once
    (:func:`mer_keras.jobs.trained.open_model`).

    Args:
        target: a run folder or a model file. allow_modified, warn: as
            :func:`mer_keras.jobs.trained.open_model`.
    Returns:
        {file name: the opened :class:`~mer_keras.jobs.trained.TrainedModel`}, Keras first.
    Raises:
        ModelFileError, ValueError: the first unusable file or field (named).
    """
    from mer_keras.jobs.trained import open_model
    from mer_keras.models.io import read_json
    from mer_keras.preprocess.representation import RepresentationConfig
    from mer_keras.runtime.metadata import check_classes

    folder, files = find_models(Path(target))
    meta_path = folder / "metadata.json"
    meta = read_json(meta_path)
    try:
        expected = RepresentationConfig.from_dict(meta["preprocessing"]).input_shape
        check_classes(meta["classes"], meta_path)
    except (KeyError, TypeError, ValueError) as exc:  # ModelFileError (unreadable JSON) is a ValueError
        if isinstance(exc, ModelFileError):
            raise
        raise ModelFileError(f"{meta_path}: missing or invalid field ({exc})") from None
    opened = {}
    for name, path in files.items():
        opened[name] = model = open_model(path, allow_modified, warn)
        if path.suffix == ".tflite":
            shape = model.model.input_shape
            if shape != tuple(expected):
                raise ModelFileError(f"{path}: the model takes {shape} but {meta_path} describes "
                                     f"inputs of shape {tuple(expected)}")
    return opened
