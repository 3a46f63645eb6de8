"""mer-keras: facial micro-expression recognition with Keras.

Public API::

    from mer_keras import create_model, list_models, load_model
"""

from __future__ import annotations

__version__ = "0.1.0"

from mer_keras import _keras  # noqa: F401  (selects tf_keras before TensorFlow loads)
from mer_keras.registry import create_model, list_models
from mer_keras.models.io import load_model

__all__ = ["create_model", "list_models", "load_model", "__version__"]
