"""metadata.json: what a deployed model needs to be fed correctly."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


#: Which frames of a window (onset = its first frame) each representation reads.
FRAMES_USED = {"dynamic_image": "every frame from onset to offset",
               "sequence": "T frames spread evenly from onset to offset (both included)",
               "flow": "the onset and apex frames", "apex": "the apex frame"}


def build_metadata(model_name: str, classes: Sequence[str], representation: dict, input_shape: Sequence[int],
                   dataset: str, protocol: str, files: dict[str, dict], window: dict | None = None,
                   apex_policy: str | None = None) -> dict:
    """The metadata of a run's exported models.

    Args:
        representation: the RepresentationConfig as a dict (representation, crop, size, flow method).
        files: {filename: {"format", "sha256", "bytes", optional "quantization"}}.
        window: the sliding window for video input (:func:`mer_keras.train.run.window_from_samples`):
            {"seconds", "frames", "fps", "stride_frames"}, or None.
        apex_policy: how training chose the apex of clips whose coding gives none (``--apex``).
    Returns:
        JSON-ready dict. Input: float32 (N, H, W, C) in [0, 255]; int8 TFLite models take
        round(x / scale + zero_point) with the stored input quantization.
    """
    from mer_keras import __version__

    return {
        "mer_keras_version": __version__,
        "model": model_name,
        "classes": list(classes),
        "input": {"shape": list(input_shape), "dtype": "float32", "range": [0.0, 255.0],
                  "normalisation": "none outside the model (the model maps [0, 255] to [-1, 1] itself)"},
        "preprocessing": {**representation,
                          "alignment": "mediapipe face mesh on the onset frame; one similarity transform "
                                       "per clip (eyes level, inter-ocular distance 0.36 x crop, eyes at "
                                       "0.36 x crop height)",
                          "frames_used": FRAMES_USED.get(representation.get("representation"), ""),
                          "apex_in_training": "the coded apex frame" + (
                              f"; clips without one: {apex_policy}" if apex_policy else "")},
        "window": window,
        "dataset": dataset,
        "protocol": protocol,
        "files": files,
    }
