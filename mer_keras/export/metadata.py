"""Writing ``metadata.json``: :func:`build_metadata`, the writers' call into the one schema,
:class:`mer_keras.runtime.metadata.ModelMetadata` (which also reads it)."""

from __future__ import annotations

from collections.abc import Sequence

from mer_keras.runtime.metadata import FRAMES_USED, ModelMetadata, sha256_file

__all__ = ["FRAMES_USED", "build_metadata", "sha256_file"]


def build_metadata(model_name: str, classes: Sequence[str], representation: dict, input_shape: Sequence[int],
                   dataset: str, protocol: str, files: dict[str, dict], window: dict | None = None,
                   apex_policy: str | None = None) -> dict:
    """The metadata of a run's exported models, as the dict written to ``metadata.json``.

    Args:
        representation: the RepresentationConfig as a dict (representation, crop, size, flow method).
        input_shape: the model's input without the batch, (H, W, C) or (T, H, W, C).
        files: {filename: {"format", "sha256", "bytes", optional "quantization"}}.
        window: the sliding window for video input (:func:`mer_keras.jobs.final_model.window_from_samples`):
            {"seconds", "frames", "fps", "stride_frames"}, or None.
        apex_policy: how training chose the apex of clips whose coding gives none (``--apex``).
    Returns:
        JSON-ready dict (:meth:`ModelMetadata.to_dict`). Input: float32 (N, H, W, C) in [0, 255];
        int8 TFLite models take round(x / scale + zero_point) with the stored input quantization.
    """
    return ModelMetadata.build(model_name, classes, representation, input_shape, dataset, protocol, files,
                               window=window, apex_policy=apex_policy).to_dict()
