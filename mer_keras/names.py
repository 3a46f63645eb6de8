"""The package's vocabularies, in one light module (no numpy, OpenCV, pandas or TensorFlow).

The command line offers these as choices; building ``mer-keras --help`` must not start
TensorFlow, so the names live here and the modules that implement them import them from here
(``mer_keras.registry`` checks at load that the built-in models are exactly :data:`MODELS`, and
``mer_keras.data.protocols`` that its protocols are :data:`PROTOCOLS`; the other names are
defined only here).
"""

from __future__ import annotations

#: Built-in architectures of the registry (``mer-keras models``).
MODELS = ("au_convlstm", "feature_refinement", "htnet", "learnet", "micro_attention", "off_apexnet", "resnet18",
          "resnet34", "ststnet", "vgg16")
#: ``--data`` values: the embedded synthetic set, each database, the composite, the published
#: composite flow images, a manifest CSV.
DATASETS = ("synthetic", "casme2", "samm", "smic", "casme", "casme_sq", "casme3", "mmew", "4dme", "composite",
            "megc2019-flow", "manifest")
#: ``--data`` values of recorded databases, which ``mer-keras data prepare`` caches (all but the generated set).
PREPARABLE_DATASETS = tuple(n for n in DATASETS if n != "synthetic")
#: Evaluation protocols (:mod:`mer_keras.data.protocols`).
PROTOCOLS = ("loso", "composite", "cross")
#: Where a coding sheet gives no apex frame.
APEX_POLICIES = ("midpoint", "spot")
#: Network input representations (:mod:`mer_keras.preprocess.representation`).
REPRESENTATIONS = ("dynamic_image", "apex", "flow", "sequence")
#: tf.distribute strategies (:mod:`mer_keras.train.strategy`).
STRATEGIES = ("auto", "default", "mirrored", "multiworker")
#: Optical-flow methods and the encodings of flow into 0..255 (:mod:`mer_keras.preprocess.flow`).
FLOW_METHODS = ("tvl1", "farneback", "dis")
FLOW_ENCODINGS = ("fixed", "minmax")
#: Rank-pooling weightings of a dynamic image (:mod:`mer_keras.preprocess.dynamic_image`).
DI_WEIGHTINGS = ("bilen", "authors")
#: Kinds of expression the synthetic generator renders.
EXPRESSIONS = ("micro", "macro")
#: Databases of long videos with spotting annotations (:mod:`mer_keras.data.spotting`).
SPOT_DATASETS = ("synthetic", "casme_sq", "samm")

#: Names registered at run time by an extension (a model or dataset defined in the user's own module
#: with ``register_model`` / ``register_dataset``), offered beside the built-in ones.
_EXTENSIONS: dict[str, list[str]] = {"models": [], "datasets": []}
_BUILT_IN = {"models": MODELS, "datasets": DATASETS}


def add_extension(kind: str, name: str) -> None:
    """Offer ``name`` (a ``"models"`` or ``"datasets"`` entry just registered) beside the built-in names."""
    if name not in _BUILT_IN[kind] and name not in _EXTENSIONS[kind]:
        _EXTENSIONS[kind].append(name)


def offered(kind: str) -> tuple[str, ...]:
    """The names an option accepts: the built-in ``"models"`` or ``"datasets"``, then those registered
    since by extensions (none unless a module registered one in this process)."""
    return _BUILT_IN[kind] + tuple(_EXTENSIONS[kind])
