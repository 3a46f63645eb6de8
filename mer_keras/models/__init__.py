"""Architectures. Importing this package registers every built-in model."""

from mer_keras.models import (  # noqa: F401
    au_convlstm,
    feature_refinement,
    htnet,
    learnet,
    micro_attention,
    off_apexnet,
    resnet,
    ststnet,
    vgg16,
)
