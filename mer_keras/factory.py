"""Model factory: the built-in architectures loaded into the registry's table, looked up and built.

:mod:`mer_keras.registry` is the table (it imports no model); this module imports
:mod:`mer_keras.models` (each module registering itself there) before it answers, so the import
graph has no circle: factory -> models -> registry.
"""

from __future__ import annotations

from typing import Any

from mer_keras._keras import lazy_keras as keras  # TensorFlow loads when a model is built
from mer_keras.errors import OptionError, UnknownNameError
from mer_keras.registry import ModelSpec, registered


def _load_builtin_models() -> None:
    """Import the built-in architectures (registering them); they must be :data:`mer_keras.names.MODELS`,
    the names the command line offers without importing them (``RuntimeError`` otherwise: a model
    added to the package and not to the names)."""
    import mer_keras.models  # noqa: F401  (registers the built-in architectures)
    from mer_keras.names import MODELS

    missing = set(MODELS) - set(registered())
    if missing:
        raise RuntimeError(f"mer_keras.names.MODELS lists {sorted(missing)}, which mer_keras.models does not register")


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    _load_builtin_models()
    return sorted(registered())


def get_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``name``.

    Raises:
        KeyError: if no model of that name is registered (the message lists the known ones).
    """
    _load_builtin_models()
    try:
        return registered()[name]
    except KeyError:
        known = ", ".join(sorted(registered()))
        raise UnknownNameError(f"unknown model {name!r}; registered models: {known}") from None


#: Most output classes a model is built with (micro-expression class sets have 2 to 8).
MAX_CLASSES = 1000


def create_model(name: str, num_classes: int, input_shape: tuple[int, ...] | None = None,
                 **cfg: Any) -> keras.Model:
    """Build a registered model.

    Args:
        name: registry key (see :func:`list_models`).
        num_classes: number of output classes (softmax width), >= 2.
        input_shape: (H, W, C) or (T, H, W, C); defaults to the model's registered shape.
        **cfg: architecture options forwarded to the builder.

    Returns:
        An uncompiled functional ``keras.Model`` taking float32 input in [0, 255] and returning
        (batch, num_classes) float32 softmax probabilities; a model with auxiliary losses returns
        a dict whose ``"predictions"`` entry is that tensor (see :func:`inference_model`).

    Raises:
        KeyError: unknown model. OptionError (a ValueError): num_classes not a whole number from 2
            to :data:`MAX_CLASSES`, an input_shape that is not a tuple of the model's number of
            dimensions, or an entry not a whole number >= 1.
    """
    import numbers

    spec = get_spec(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or \
            not 2 <= num_classes <= MAX_CLASSES:
        raise OptionError(f"num_classes must be a whole number >= 2, got {num_classes!r}" if not (
            isinstance(num_classes, numbers.Integral) and num_classes > MAX_CLASSES) else
            f"num_classes {num_classes}: expected at most {MAX_CLASSES} (the output layer would not fit in memory)")
    try:
        shape = tuple(input_shape or spec.input_shape)
    except TypeError:
        raise OptionError(f"input_shape {input_shape!r}: expected a tuple like {spec.input_shape}") from None
    if not all(d is None or (isinstance(d, numbers.Integral) and not isinstance(d, bool) and d >= 1) for d in shape):
        raise OptionError(f"input_shape {shape!r}: expected whole numbers >= 1, e.g. {spec.input_shape}")
    if len(shape) != len(spec.input_shape):
        raise OptionError(f"input_shape {shape!r}: {name} takes {len(spec.input_shape)} dimensions "
                          f"({'(T, H, W, C)' if len(spec.input_shape) == 4 else '(H, W, C)'}), e.g. {spec.input_shape}")
    options = {**spec.defaults, **cfg}
    return spec.builder(shape, int(num_classes), **options)


def inference_model(model: keras.Model) -> keras.Model:
    """The classifier of a model: itself, or for a multi-output model the sub-model from its input
    to the layer named ``predictions`` ((B, K) softmax), sharing its weights.

    Training-only heads (proposal, AU, clustering) are dropped: the saved ``model.keras``, the TFLite
    exports, ``evaluate`` and ``explain`` all use this single-output model.
    """
    if len(model.outputs) == 1:
        return model
    return keras.Model(model.inputs, model.get_layer("predictions").output, name=model.name)
