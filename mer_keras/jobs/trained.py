"""A trained model to use: its file in a run or released folder, and its ``metadata.json``.

Shared by ``predict`` and ``spot`` (light imports only: the command line's help loads this).
"""

from __future__ import annotations

from pathlib import Path

from mer_keras.errors import MissingFileError, ModelFileError

#: Model files a folder is searched for, in this order.
MODEL_FILES = ("model.keras", "model_fp32.tflite", "model_int8.tflite")


def find_model(target: str | Path) -> tuple[Path, dict]:
    """The model file to run and its ``metadata.json`` (read).

    A folder gives its ``model.keras``, else ``model_fp32.tflite``, else ``model_int8.tflite``.

    Raises:
        MissingFileError: nothing at ``target``. ModelFileError: no model file in the folder, not a
            ``.keras`` / ``.tflite`` file, or no readable ``metadata.json`` beside it (named).
    """
    from mer_keras.models.io import read_json
    from mer_keras.runs import WEIGHTS_FILE

    p = Path(target)
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
        raise MissingFileError(f"{p}: no such model file or folder")
    if p.suffix not in (".keras", ".tflite"):
        raise ModelFileError(f"{p}: expected a .keras or .tflite model (or a run folder)")
    meta_path = p.parent / "metadata.json"
    if not meta_path.exists():
        raise ModelFileError(f"{meta_path} is missing: it tells the classes and the input preprocessing")
    meta = read_json(meta_path)
    for key in ("classes", "preprocessing"):
        if key not in meta:
            raise ModelFileError(f"{meta_path}: no {key!r} field")
    return p, meta
