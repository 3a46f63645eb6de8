"""Model registry: every architecture registers its builder and the input representation it
consumes, so the CLI, the data pipeline and the tests enumerate what exists from one table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from mer_keras._keras import keras

#: Representations the data pipeline can build (see ``mer_keras.data.pipeline``).
REPRESENTATIONS = ("dynamic_image", "apex", "flow")


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows of one architecture.

    Attributes:
        name: registry key, e.g. ``"learnet"``.
        builder: ``build_<name>(input_shape, num_classes, **cfg) -> keras.Model``.
        representation: default input representation, one of :data:`REPRESENTATIONS`.
        input_shape: default (H, W, C) input shape for that representation.
        citation: short reference of the paper the model follows.
    """

    name: str
    builder: Callable[..., keras.Model]
    representation: str
    input_shape: tuple[int, int, int]
    citation: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(name: str, *, representation: str, input_shape: tuple[int, int, int],
                   citation: str = "", **defaults: Any) -> Callable:
    """Decorator registering ``build_<name>`` under ``name``.

    Raises:
        ValueError: if the name is taken or the representation is unknown.
    """
    if representation not in REPRESENTATIONS:
        raise ValueError(f"unknown representation {representation!r}; expected one of {REPRESENTATIONS}")

    def wrap(builder: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = ModelSpec(name, builder, representation, tuple(input_shape), citation, defaults)
        return builder

    return wrap


def _load_builtin_models() -> None:
    # Importing the package registers every built-in architecture.
    import mer_keras.models  # noqa: F401


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    _load_builtin_models()
    return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``name``.

    Raises:
        KeyError: if no model of that name is registered (the message lists the known ones).
    """
    _load_builtin_models()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; registered models: {', '.join(sorted(_REGISTRY))}") from None


def create_model(name: str, num_classes: int, input_shape: tuple[int, int, int] | None = None,
                 **cfg: Any) -> keras.Model:
    """Build a registered model.

    Args:
        name: registry key (see :func:`list_models`).
        num_classes: number of output classes (softmax width), >= 2.
        input_shape: (H, W, C); defaults to the model's registered shape.
        **cfg: architecture options forwarded to the builder.

    Returns:
        An uncompiled functional ``keras.Model`` taking float32 input in [0, 255] and returning
        (batch, num_classes) float32 softmax probabilities.

    Raises:
        KeyError: unknown model. ValueError: num_classes < 2.
    """
    spec = get_spec(name)
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    options = {**spec.defaults, **cfg}
    return spec.builder(tuple(input_shape or spec.input_shape), num_classes, **options)
