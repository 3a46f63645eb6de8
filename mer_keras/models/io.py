"""Loading saved models safely (no pickle, no Lambda code)."""

from __future__ import annotations

from pathlib import Path

from mer_keras._keras import keras


class ModelFileError(ValueError):
    """A model file is missing, truncated or not a Keras model."""


def read_json(path: str | Path) -> dict:
    """A run's JSON file (metadata.json, config.json, export_report.json).

    Raises:
        ModelFileError: missing or not valid JSON (the message names the file).
    """
    import json

    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: not readable JSON ({exc})") from None


def resolve_model_path(path: str | Path) -> Path:
    """A ``.keras`` file, or a run folder holding ``model.keras``.

    Raises:
        ModelFileError: if nothing loadable is there.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "model.keras"
    if not p.exists():
        raise ModelFileError(f"no model at {p}")
    return p


def load_model(path: str | Path) -> keras.Model:
    """Load a Keras model saved by mer-keras (``.keras``) or a run folder's ``model.keras``.

    Uses ``safe_mode=True``: arbitrary Python (Lambda layers, pickled objects) is refused.

    Returns:
        The ``keras.Model``, uncompiled.
    Raises:
        ModelFileError: missing, truncated or foreign file (the message names it).
    """
    import mer_keras.models  # noqa: F401  (registers custom objects, if any)

    p = resolve_model_path(path)
    if p.suffix != ".keras":
        raise ModelFileError(f"{p}: expected a .keras file (TFLite models are read by mer_keras.export.tflite)")
    try:
        return keras.models.load_model(p, compile=False, safe_mode=True)
    except Exception as exc:  # keras raises many types for corrupt archives
        raise ModelFileError(f"{p}: not a loadable Keras model ({type(exc).__name__}: {exc})") from exc
