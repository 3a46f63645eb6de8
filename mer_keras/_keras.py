"""The one place that chooses the Keras implementation.

tensorflow-model-optimization 0.8.1 (QAT) works only with Keras 2 (the ``tf_keras`` package), so
``TF_USE_LEGACY_KERAS=1`` must be set before TensorFlow is imported anywhere in the process.
Every module of ``mer_keras`` imports ``keras`` and ``tf`` from here, never directly.

Raises:
    RuntimeError: if TensorFlow was already imported with Keras 3 as ``tf.keras`` (an import of
        tensorflow happened before this module and without the variable set).
"""

from __future__ import annotations

import os
import sys

_already_imported = "tensorflow" in sys.modules
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TF C++ start-up noise (CUDA probes); override to see it
os.environ.setdefault("GLOG_minloglevel", "2")

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

if _already_imported and not tf.keras.__name__.startswith("tf_keras"):
    raise RuntimeError(
        "tensorflow was imported before mer_keras with Keras 3 as tf.keras; "
        "import mer_keras first or set TF_USE_LEGACY_KERAS=1 in the environment"
    )

tf.get_logger().setLevel("ERROR")

__all__ = ["tf", "keras"]
