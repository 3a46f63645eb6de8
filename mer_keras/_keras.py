"""The one place that chooses the Keras implementation.

tensorflow-model-optimization 0.8.1 (QAT) works only with Keras 2 (the ``tf_keras`` package), so
``TF_USE_LEGACY_KERAS=1`` must be set before TensorFlow is imported anywhere in the process.
Importing this module sets it (``import mer_keras`` does so); TensorFlow itself is imported on
first use of ``tf`` or ``keras`` from here (PEP 562), so the parts of the package that never touch
a network (preprocessing, used by the ``edge/`` runner on devices without TensorFlow) stay light.
Every module of ``mer_keras`` imports ``keras`` and ``tf`` from here, never directly.

Raises:
    RuntimeError: on first use, if TensorFlow was already imported with Keras 3 as ``tf.keras``
        (an import of tensorflow happened before ``mer_keras`` and without the variable set).
"""

from __future__ import annotations

import os
import sys

_already_imported = "tensorflow" in sys.modules
#: TF_CPP_MIN_LOG_LEVEL as the user set it before mer_keras did ("" when unset), inherited by child
#: processes: 0 (or MER_KERAS_VERBOSE=1) shows TensorFlow's own start-up lines; any other level is
#: at least as quiet as the default (:func:`mer_keras.native.verbose`).
os.environ.setdefault("MER_KERAS_USER_TF_LOG", os.environ.get("TF_CPP_MIN_LOG_LEVEL", ""))
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TF C++ start-up noise (CUDA probes); override to see it
os.environ.setdefault("GLOG_minloglevel", "2")

from mer_keras.native import quiet_native_stderr  # noqa: E402  (after the log levels above)

__all__ = ["tf", "keras", "lazy_keras", "keras_layers", "gradient_registry"]  # noqa: F822  (loaded on first use)


class _Lazy:
    """A module (or one of its attributes) loaded on first attribute access: the architectures and
    the registry bind ``keras`` / ``layers`` to these at import, so listing the registered models
    (``mer-keras models``) imports no TensorFlow."""

    def __init__(self, attribute: str | None = None):
        self._attribute = attribute
        self._target = None

    def __getattr__(self, name: str):
        target = self._target
        if target is None:  # the first use loads TensorFlow once; later uses are one attribute lookup
            if "keras" not in globals():
                _load()
            target = globals()["keras"]
            target = getattr(target, self._attribute) if self._attribute else target
            self._target = target
        return getattr(target, name)


#: ``keras`` (tf_keras) and ``keras.layers``, TensorFlow imported when first used.
lazy_keras = _Lazy()
keras_layers = _Lazy("layers")


def _load() -> None:
    with quiet_native_stderr():
        import tensorflow as tf
        import tf_keras as keras

        tf.config.list_physical_devices("GPU")  # the CUDA probe, and its complaint on a machine without GPU, here

    if _already_imported and not tf.keras.__name__.startswith("tf_keras"):
        raise RuntimeError(
            "tensorflow was imported before mer_keras with Keras 3 as tf.keras; "
            "import mer_keras first or set TF_USE_LEGACY_KERAS=1 in the environment"
        )
    tf.get_logger().setLevel("ERROR")
    globals().update(tf=tf, keras=keras)


def gradient_registry() -> dict | None:
    """TensorFlow's global gradient-function table (op type name -> entry), or None if this
    TensorFlow has none. A TensorFlow internal, read here so that it is reached in one place;
    :func:`mer_keras.train.memory.releasing_fit_memory` prunes it."""
    _load()
    from tensorflow.python.framework import ops

    return getattr(getattr(ops, "_gradient_registry", None), "_registry", None)


def op_determinism_enabled() -> bool:
    """Whether ``tf.config.experimental.enable_op_determinism()`` is in force (the public API has
    only the setter); read here so that the TensorFlow internal is reached in one place."""
    _load()
    from tensorflow.python.framework import config

    return bool(config.is_op_determinism_enabled())


def __getattr__(name: str):
    if name in ("tf", "keras"):
        _load()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
