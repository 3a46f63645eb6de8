"""The TFLite model and its ``metadata.json``, loaded and checked against each other, for the edge runner.

Imports ``mer_keras.runtime`` (the TFLite wrapper and the metadata.json schema) and, for a preset's
name, ``mer_keras.presets``; never TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from edge.errors import EdgeInputError
from mer_keras.runtime.metadata import MetadataError, ModelInfo, ModelMetadata, check_output_count
from mer_keras.runtime.tflite import TFLiteModel


def read_metadata(path: str | Path, window_seconds: float | None = None) -> ModelInfo:
    """Parse a run's ``metadata.json`` (written by ``mer-keras train`` / ``mer-keras export``).

    The schema and its checks are :class:`mer_keras.runtime.metadata.ModelMetadata`.

    Args:
        window_seconds: override the window length (stride stays half a window unless the
            metadata says otherwise); needed for metadata written before windows were recorded.
    Raises:
        EdgeInputError: missing or unreadable file, or a missing/invalid field (named): window
            length, frame rate and stride must be numbers > 0 within
            :data:`~mer_keras.runtime.metadata.MAX_WINDOW_SECONDS` and :data:`MAX_FPS`.
    """
    try:
        return ModelMetadata.from_file(path).model_info(window_seconds)
    except MetadataError as exc:
        raise EdgeInputError(str(exc)) from None


def check_model_path(path: Path) -> None:
    """Refuse a ``--model`` that is not a ``.tflite`` file, saying what to give instead.

    Raises:
        EdgeInputError: a folder (its ``.tflite`` files are listed), a Keras model, or a symbolic
            link to nothing (or a loop of links).
    """
    if path.is_dir():
        found = sorted(p.name for p in path.glob("*.tflite") if p.is_file())
        raise EdgeInputError(f"{path}: a folder; give the .tflite model file inside it with --model"
                             + (f" ({', '.join(found)})" if found else " (it holds none: export one with "
                                                                         "`mer-keras export RUN`)"))
    if path.is_symlink() and not path.exists():
        raise EdgeInputError(f"{path}: a symbolic link to nothing (or a loop of links); expected a .tflite model file")
    if path.suffix.lower() in (".keras", ".h5"):
        raise EdgeInputError(f"{path}: a Keras model; the edge runner takes a .tflite model (`mer-keras export RUN` "
                             "writes model_fp32.tflite and model_int8.tflite beside it)")


def load(model_path: str | Path, metadata: str | Path | None = None, num_threads: int | None = None,
         window_seconds: float | None = None, delegate: str | None = None, allow_modified: bool = False,
         warn: Callable[[str], None] | None = None) -> tuple[TFLiteModel, ModelInfo]:
    """The TFLite model and its metadata (``metadata.json`` beside the model unless given), checked
    against each other.

    In order: the metadata (:class:`~mer_keras.runtime.metadata.ModelMetadata`: ``classes`` a list
    of unique non-empty names, a usable window), the model file's sha256 against the one the
    metadata records for its name (hashed once, before the interpreter parses it:
    :meth:`~mer_keras.runtime.metadata.ModelMetadata.verify`), the interpreter, the model's input
    against the representation, its outputs against the classes.

    Args:
        allow_modified: use a model file whose sha256 differs from the recorded one, with a
            warning (``--allow-modified``); the other checks stay.
        warn: where that warning goes (default :func:`warnings.warn`).
    Raises:
        EdgeInputError: unreadable model or metadata, a model file other than the metadata records
            (unless ``allow_modified``), or a model whose input does not match the metadata's
            representation or whose outputs are not its classes (each names the file).
    """
    model_path = Path(model_path)
    if not model_path.exists() and len(model_path.parts) == 1:  # a preset's name: its int8 model
        from mer_keras.presets import resolve

        folder = resolve(model_path)
        model_path = folder / "model_int8.tflite" if folder.is_dir() else model_path
    check_model_path(model_path)
    meta_path = Path(metadata) if metadata else model_path.with_name("metadata.json")
    try:
        meta = ModelMetadata.from_file(meta_path)
        info = meta.model_info(window_seconds)
    except MetadataError as exc:
        raise EdgeInputError(str(exc)) from None
    try:
        if model_path.is_file():  # a missing file is named by the interpreter's message
            meta.verify(model_path, allow_modified, warn)
        model = TFLiteModel(model_path, num_threads=num_threads, delegate=delegate)
        check_output_count(model_path, model.num_outputs, info.classes, meta_path, allow_modified)
    except ValueError as exc:
        raise EdgeInputError(str(exc)) from None
    expected = tuple(info.representation.input_shape)
    if model.input_shape != expected:
        raise EdgeInputError(f"{model_path}: the model takes {model.input_shape} but {meta_path} describes "
                             f"{info.representation.representation} inputs of shape {expected}")
    return model, info
