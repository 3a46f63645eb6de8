"""Architectures. Importing this package registers every built-in model."""

from mer_keras.models import learnet, ststnet  # noqa: F401
