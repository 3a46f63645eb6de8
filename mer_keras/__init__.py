"""mer-keras: facial micro-expression recognition with Keras.

Public API::

    from mer_keras import create_model, list_models, list_presets, load_model, predict

    model = load_model("ststnet_megc2019_composite")   # a released model by name (list_presets())

``load_model`` and ``predict`` take a path or a preset's name; they check a model file against
the ``metadata.json`` beside it (its sha256 and its outputs against ``classes``) and refuse one
that differs with ``ModelFileError``; ``allow_modified=True`` uses a file whose sha256 differs,
with a ``mer_keras.runtime.metadata.ModelModifiedWarning``.

``import mer_keras`` selects tf_keras (see ``mer_keras._keras``) but does not import
TensorFlow; the names above load it on first use. The preprocessing modules
(``mer_keras.preprocess``) never import it, which is what lets the ``edge/`` runner share them on
devices without TensorFlow.
"""

from __future__ import annotations

__version__ = "0.1.0"

from mer_keras import _keras  # noqa: F401  (selects tf_keras before TensorFlow loads)

__all__ = ["create_model", "list_models", "list_presets", "load_model", "predict", "__version__"]


def __getattr__(name: str):
    if name in ("create_model", "list_models"):
        from mer_keras import factory

        return getattr(factory, name)
    if name == "load_model":
        from mer_keras.models.io import load_model

        return load_model
    if name == "list_presets":
        from mer_keras.presets import preset_names

        return preset_names
    if name == "predict":
        from mer_keras.jobs.predict import predict

        return predict
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
