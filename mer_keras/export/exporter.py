"""Writing one export format of a model, and verifying an export against the Keras model, each
by the format's exporter object (:mod:`mer_keras.export.exporters`).

Every export is written atomically (a temporary file or folder renamed into place) and described
by an info dict (format, sha256, bytes, quantization scales, float ops left) for ``metadata.json``;
verification gives max and mean |p_export - p_keras|, argmax agreement and pooled UF1 of both on
held-out inputs. The ``mer-keras export RUN`` job over a run folder is :mod:`mer_keras.jobs.export`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mer_keras.export.formats import ExportFormat


@dataclass
class QATOptions:
    """Quantization-aware fine-tuning budget (``--qat-epochs``, ``--qat-lr``) and the run's training setup.

    Attributes:
        epochs: fine-tuning epochs (>= 1). lr: Adam learning rate.
        class_weight: balanced class weights, as the run was trained.
        seed: the run's seed (global seed of the fine-tune, range calibration, batches).
        batches: ``(x, y) -> tf.data.Dataset`` of the fine-tuning batches, shuffled, augmented and
            batched as the run was trained; it is called after the seed is set
            (:func:`mer_keras.export.quantize.qat_fine_tune`). Required for ``tflite_qat``: the
            export library builds no training pipeline, the caller (:mod:`mer_keras.jobs.export`)
            passes the run's.
    """

    epochs: int = 3
    lr: float = 1e-4
    class_weight: bool = True
    seed: int = 0
    batches: Callable | None = None

    def __post_init__(self) -> None:
        """Refuse a budget the fine-tune cannot use (named as on the command line).

        Raises:
            OptionError: epochs not a whole number in 1..10000, lr not a finite number > 0, or a
                seed outside 0..2**32 - 1.
        """
        import math

        from mer_keras.errors import OptionError

        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or not 1 <= self.epochs <= 10_000:
            raise OptionError(f"--qat-epochs {self.epochs!r}: expected a whole number from 1 to 10000")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not math.isfinite(self.lr) or \
                self.lr <= 0:
            raise OptionError(f"--qat-lr {self.lr!r}: expected a finite number above 0")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:
            raise OptionError(f"QAT seed {self.seed!r}: expected a whole number from 0 to 4294967295")


def write_export(model, fmt: ExportFormat, folder: Path, x_train: np.ndarray | None = None,
                 y_train: np.ndarray | None = None, qat: QATOptions | None = None) -> tuple[Path, dict]:
    """Write ``model`` in one format into ``folder`` (by the row's exporter).

    Args:
        model: the float single-output classifier (``keras.Model``), input float32 in [0, 255].
        fmt: a row of :data:`~mer_keras.export.formats.FORMATS`.
        x_train, y_train: (N, ...) float32 training inputs and (N,) int labels; needed when
            ``fmt.needs_data`` (int8 calibration, QAT fine-tuning).
        qat: for ``tflite_qat``, the fine-tuning options with their ``batches``.
    Returns:
        (path, info) with info {"format", "bytes", "sha256" (files), "seconds", and for TFLite
        "quantization" (input/output scale and zero point), "float_ops", "float_fallback"; for QAT
        "qat": the layer plan and the fine-tuning history}.
    Raises:
        ValueError: training inputs missing for a format that needs them, or QAT without
            ``qat.batches``.
    """
    from mer_keras.runtime.metadata import sha256_file

    if fmt.needs_data and (x_train is None or len(x_train) == 0):
        raise ValueError(f"{fmt.name} needs the run's training inputs (calibration or fine-tuning)")
    if fmt.quant == "qat" and (qat is None or qat.batches is None):
        raise ValueError(f"{fmt.name} needs QATOptions.batches: the run's fine-tuning batches, "
                         "(x, y) -> tf.data.Dataset")
    t0 = time.perf_counter()
    path = Path(folder) / fmt.filename
    info: dict = {"format": fmt.name, **fmt.exporter.write(model, fmt, path, x_train, y_train, qat)}
    info["seconds"] = round(time.perf_counter() - t0, 2)
    if path.is_file():
        info.update(bytes=path.stat().st_size, sha256=sha256_file(path))
    else:
        info["bytes"] = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path, info


def verify_export(path: Path, fmt: ExportFormat, reference: np.ndarray, x: np.ndarray, y: np.ndarray,
                  classes: Sequence[str]) -> dict:
    """Parity of an export with the Keras model's probabilities ``reference`` on inputs ``x``.

    Returns:
        :func:`mer_keras.export.verify.compare_outputs` plus ``uf1_drop_points``
        (100 x (UF1 Keras - UF1 export)).
    """
    return fmt.exporter.verify(path, reference, x, y, classes)


#: Largest UF1 drop (points) of an int8 or QAT-int8 export against float32 the project accepts.
INT8_UF1_BUDGET_POINTS = 2.0
