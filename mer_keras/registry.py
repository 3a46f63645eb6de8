"""Model registry: a pure table. Every architecture registers its builder and the input
representation it consumes with :func:`register_model`; the table imports no model.

Building, listing and looking up models (which imports the built-in architectures first) is
:mod:`mer_keras.factory`, as in timm's ``_registry`` / ``_factory`` split.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from mer_keras import names
from mer_keras._keras import lazy_keras as keras  # TensorFlow loads when a model is built
from mer_keras.errors import OptionError
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
        representation_options: extra :class:`~mer_keras.preprocess.representation.RepresentationConfig`
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
        names.add_extension("models", name)
        _REGISTRY[name] = ModelSpec(name, builder, representation, tuple(input_shape), citation, defaults,
                                    dict(aux_losses or {}), dict(representation_options or {}), explain_layer, lr,
                                    tuple(variants), dict(recipes or {}))
        return builder

    return wrap


def registered() -> Mapping[str, ModelSpec]:
    """The table as it stands: {name: spec} of every model registered so far (read-only).

    It holds the built-in architectures only once :mod:`mer_keras.models` is imported; use
    :func:`mer_keras.factory.get_spec` / :func:`~mer_keras.factory.list_models`, which import them.
    """
    return MappingProxyType(_REGISTRY)
