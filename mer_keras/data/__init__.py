"""Datasets (one module per database), the embedded synthetic default, protocols and pipelines."""

from mer_keras.data.records import Sample

__all__ = ["Sample"]
