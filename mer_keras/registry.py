"""Model registry: every architecture registers its builder and the input representation it
consumes, so the CLI, the data pipeline and the tests enumerate what exists from one table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mer_keras._keras import lazy_keras as keras  # TensorFlow loads when a model is built
from mer_keras.errors import OptionError, UnknownNameError
from mer_keras.preprocess.representation import REPRESENTATIONS, RepresentationConfig

#: Auxiliary training targets a model may ask for, by output name (see ``mer_keras.train.targets``):
#: ``proposal`` (one-hot of the class, one sigmoid per class), ``au`` (multi-hot AUs of the coding
#: sheet, masked when a clip has none), ``au_cluster`` (an embedding pulled to the centre of the
#: clips sharing each AU).
AUX_TARGETS = ("proposal", "au", "au_cluster")

#: ``mer-keras train`` options a named recipe may set.
RECIPE_KEYS = ("lr", "epochs", "batch_size", "augment", "shift", "class_weight", "variant")

#: Adam learning rate of models whose paper gives none that the project follows (``--lr`` overrides).
DEFAULT_LR = 1e-3


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows of one architecture.

    Attributes:
        name: registry key, e.g. ``"learnet"``.
        builder: ``build_<name>(input_shape, num_classes, **cfg) -> keras.Model``.
        representation: default input representation, one of :data:`REPRESENTATIONS`.
        input_shape: default input shape for that representation: (H, W, C), or (T, H, W, C) for
            ``sequence``.
        citation: short reference of the paper the model follows.
        defaults: builder keyword options applied unless overridden.
        aux_losses: {output name: (target kind from :data:`AUX_TARGETS`, default loss weight)} for
            multi-output models; their classification output is the layer named ``predictions``.
        representation_options: extra :class:`~mer_keras.data.pipeline.RepresentationConfig`
            fields the model needs (e.g. ``{"channels": 1}`` or ``{"regions": "htnet"}``).
        lr: Adam learning rate the model trains with unless ``--lr`` is given, when its paper or
            official code states one that differs from the project's default
            (:data:`DEFAULT_LR`); ``None`` means the default.
        explain_layer: layer ``mer-keras explain`` draws by default, where the last spatial layer
            would see only one stream or one branch (``None``: the last spatial layer); a tuple
            names one layer per variant (the first the model has).
        variants: names the builder's ``variant`` option accepts (first: its default); empty when
            the architecture has none.
        recipes: named training recipes besides ``project`` (the project's defaults), e.g.
            ``{"paper": {"lr": 5e-5, "epochs": 500, "batch_size": 256, "augment": False,
            "class_weight": False, "source": "..."}}``: values of ``mer-keras train`` options
            (:data:`RECIPE_KEYS`) and where they come from (``source``). ``--recipe NAME`` applies
            them (see :meth:`recipe`).
    """

    name: str
    builder: Callable[..., keras.Model]
    representation: str
    input_shape: tuple[int, ...]
    citation: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)
    aux_losses: dict[str, tuple[str, float]] = field(default_factory=dict)
    representation_options: dict[str, Any] = field(default_factory=dict)
    explain_layer: str | tuple[str, ...] | None = None
    lr: float | None = None
    variants: tuple[str, ...] = ()
    recipes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def recipe(self, name: str) -> dict[str, Any]:
        """The training options of recipe ``name`` (without its ``source``); ``project``: none (the defaults).

        Raises:
            OptionError: the model has no recipe of that name (the message lists its recipes).
        """
        if name == "project":
            return {}
        if name not in self.recipes:
            raise OptionError(f"--recipe {name!r}: {self.name} has recipes "
                              f"{', '.join(['project', *self.recipes])}")
        return {k: v for k, v in self.recipes[name].items() if k != "source"}

    @property
    def learning_rate(self) -> float:
        """The Adam learning rate used when ``--lr`` is not given."""
        return self.lr if self.lr is not None else DEFAULT_LR

    def data_config(self, representation: str | None = None, flow_method: str = "tvl1") -> RepresentationConfig:
        """The input representation the model is trained on: its registered one unless overridden.

        The size (and T, channels, region layout) come from the registered input shape and
        representation options; options that do not apply to an overriding representation are
        dropped. The face is aligned at no less than the input size (a 224 px apex input is a
        224 px crop, not an upscaled 128 px one).

        Raises:
            OptionError: a single-image model given ``sequence`` or the other way round.
        """
        rep = representation or self.representation
        shape = self.input_shape
        if (rep == "sequence") != (self.representation == "sequence"):
            raise OptionError(f"{self.name} takes "
                              f"{'a sequence of frames' if self.representation == 'sequence' else 'one image'}"
                              f" ({self.representation}); --representation {rep} does not fit it")
        options = dict(self.representation_options) if rep == self.representation else {}
        if rep == "sequence":
            options["frames"] = shape[0] if self.representation == "sequence" else 8
        if rep in ("apex", "sequence") and shape[-1] == 1:
            options["channels"] = 1
        return RepresentationConfig(representation=rep, size=shape[-2], crop=max(128, shape[-2]),
                                    flow_method=flow_method, **options)

    def check_variant(self, variant: str | None) -> None:
        """Refuse a ``variant`` the builder does not have, without building the model.

        Raises:
            OptionError: the model has no variants, or not this one (the message lists them).
        """
        if variant is None:
            return
        if not self.variants:
            with_variants = [n for n, s in _REGISTRY.items() if s.variants]
            raise OptionError(f"{self.name} has no variants; "
                              f"--variant applies to {' and '.join(sorted(with_variants))}")
        if variant not in self.variants:
            raise OptionError(f"--variant {variant!r}: {self.name} has variants {', '.join(self.variants)}")


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(name: str, *, representation: str, input_shape: tuple[int, ...], citation: str = "",
                   aux_losses: dict[str, tuple[str, float]] | None = None,
                   representation_options: dict[str, Any] | None = None,
                   explain_layer: str | tuple[str, ...] | None = None,
                   lr: float | None = None, variants: tuple[str, ...] = (),
                   recipes: dict[str, dict[str, Any]] | None = None, **defaults: Any) -> Callable:
    """Decorator registering ``build_<name>`` under ``name``.

    Raises:
        ValueError: if the name is taken, the representation or an auxiliary target is unknown,
            or a recipe sets an option that is not in :data:`RECIPE_KEYS` or has no ``source``.
    """
    for rname, recipe in (recipes or {}).items():
        unknown = set(recipe) - set(RECIPE_KEYS) - {"source"}
        if unknown or "source" not in recipe or rname == "project":
            raise ValueError(f"model {name!r}: recipe {rname!r} must set only {RECIPE_KEYS} and name its source "
                             f"(got {sorted(recipe)}); 'project' is reserved for the defaults")
    if representation not in REPRESENTATIONS:
        raise ValueError(f"unknown representation {representation!r}; expected one of {REPRESENTATIONS}")
    for out, (kind, _) in (aux_losses or {}).items():
        if kind not in AUX_TARGETS:
            raise ValueError(f"model {name!r}: output {out!r} has unknown target {kind!r}; "
                             f"expected one of {AUX_TARGETS}")

    def wrap(builder: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = ModelSpec(name, builder, representation, tuple(input_shape), citation, defaults,
                                    dict(aux_losses or {}), dict(representation_options or {}), explain_layer, lr,
                                    tuple(variants), dict(recipes or {}))
        return builder

    return wrap


def _load_builtin_models() -> None:
    """Import the built-in architectures (registering them); they must be :data:`mer_keras.names.MODELS`,
    the names the command line offers without importing them (``RuntimeError`` otherwise: a model
    added to the package and not to the names)."""
    import mer_keras.models  # noqa: F401
    from mer_keras.names import MODELS

    missing = set(MODELS) - set(_REGISTRY)
    if missing:
        raise RuntimeError(f"mer_keras.names.MODELS lists {sorted(missing)}, which mer_keras.models does not register")


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
        raise UnknownNameError(f"unknown model {name!r}; registered models: {', '.join(sorted(_REGISTRY))}") from None


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
