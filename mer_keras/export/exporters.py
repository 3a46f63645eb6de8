"""One exporter object per export format family: how it writes, loads, predicts and is verified.

Each row of :data:`mer_keras.export.formats.FORMATS` holds its exporter (as keras-hub registers an
exporter class per format); :func:`mer_keras.export.exporter.write_export` and
:func:`~mer_keras.export.exporter.verify_export` only ask it. Heavy libraries (TensorFlow, tfmot,
tf2onnx, onnxruntime) are imported inside the methods: reading the table loads none of them.

A new format is an :class:`Exporter` subclass and one :func:`mer_keras.export.formats.register_format`
row (docs/CONTRIBUTING.md).
"""

from __future__ import annotations

import contextlib
import io
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mer_keras import atomic

if TYPE_CHECKING:  # numpy loads with the methods that compute: reading the table stays light
    import numpy as np


class Exporter(ABC):
    """Base of the exporters: write an exported file (or folder), load it, predict with it, verify it.

    Attributes:
        folder: the export is a folder (SavedModel), not one file.
        in_place: the export is the run's own model file, written only where it is missing (the
            Keras archive: ``mer-keras export`` keeps the run's ``model.keras`` as it is).
    """

    folder = False
    in_place = False

    @abstractmethod
    def write(self, model, fmt, path: Path, x_train: np.ndarray | None, y_train: np.ndarray | None, qat) -> dict:
        """Write ``model`` (the float single-output classifier, input float32 in [0, 255]) at ``path``
        atomically; return what the format adds to the export's info dict (e.g. ``quantization``).

        ``x_train`` / ``y_train`` ((N, ...) float32, (N,) int) and ``qat``
        (:class:`~mer_keras.export.exporter.QATOptions`) are given to the formats that need them
        (``fmt.needs_data``); the caller checked they are there.
        """

    @abstractmethod
    def load(self, path: Path) -> Callable[[np.ndarray, int], np.ndarray]:
        """A function ``(x, batch_size) -> (N, K) float32 probabilities`` of the export at ``path``.

        Raises:
            ValueError: a file that does not load as this format.
        """

    def predict(self, path: Path, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """(N, K) float32 probabilities of the export at ``path`` on (N, ...) float32 inputs in [0, 255]."""
        return self.load(path)(x, batch_size)

    def verify(self, path: Path, reference: np.ndarray, x: np.ndarray, y: np.ndarray,
               classes: Sequence[str]) -> dict:
        """Parity of the export with the Keras model's (N, K) probabilities ``reference`` on ``x``.

        Returns:
            :func:`mer_keras.export.verify.compare_outputs` plus ``uf1_drop_points``
            (100 x (UF1 Keras - UF1 export)).
        """
        from mer_keras.export.verify import compare_outputs

        out = compare_outputs(reference, self.predict(path, x), y, classes)
        out["uf1_drop_points"] = round(100 * (out["uf1_reference"] - out["uf1_candidate"]), 2)
        return out


def _ignore(message: str) -> None:
    """A ``warn`` that says nothing (the warning was given where the model was first loaded)."""


class KerasExporter(Exporter):
    """Keras v3 archive (``model.keras``): no pickled code, loads with :func:`mer_keras.models.io.load_model`."""

    in_place = True

    def write(self, model, fmt, path, x_train, y_train, qat) -> dict:
        if not path.is_file():  # a run folder's model.keras is the source itself: kept as it is
            from mer_keras.models.io import save_keras

            save_keras(model, path)
        return {}

    def load(self, path):
        from mer_keras.models.inference import predict_proba
        from mer_keras.models.io import load_model

        # an export's .keras is the run's model.keras, checked against metadata.json when the export
        # loaded it (or used with --allow-modified): here only what it predicts is compared
        model = load_model(path, allow_modified=True, warn=_ignore)
        return lambda x, batch_size=64: predict_proba(model, x)


class SavedModelExporter(Exporter):
    """TensorFlow SavedModel folder with the inference signature ``serve``."""

    folder = True

    def write(self, model, fmt, path, x_train, y_train, qat) -> dict:
        with atomic.atomic_dir(path) as tmp, contextlib.redirect_stdout(io.StringIO()):  # Keras prints the endpoints
            model.export(str(tmp))
        return {}

    def load(self, path):
        import numpy as np

        from mer_keras._keras import tf

        loaded = tf.saved_model.load(str(path))  # the closure keeps it: the endpoint's variables live in it

        def predict(x, batch_size=64):
            return np.concatenate([loaded.serve(tf.constant(x[i:i + batch_size], tf.float32)).numpy()
                                   for i in range(0, len(x), batch_size)])

        return predict


class OnnxExporter(Exporter):
    """ONNX through tf2onnx (:mod:`mer_keras.export.onnx`), run by onnxruntime."""

    def write(self, model, fmt, path, x_train, y_train, qat) -> dict:
        from mer_keras.export.onnx import convert_onnx

        return {"onnx": convert_onnx(model, path)}

    def load(self, path):
        from mer_keras.export.onnx import predict_onnx

        return lambda x, batch_size=64: predict_onnx(path, x, batch_size)


class TFLiteExporter(Exporter):
    """TFLite flatbuffer, quantized as the row's ``quant`` says (:mod:`mer_keras.export.tflite`;
    ``qat``: fine-tuned by :func:`mer_keras.export.quantize.qat_fine_tune` first)."""

    def write(self, model, fmt, path, x_train, y_train, qat) -> dict:
        from mer_keras.export.tflite import convert_checked
        from mer_keras.runtime.tflite import TFLiteModel

        info: dict = {}
        source = model
        if fmt.quant == "qat":
            from mer_keras.export.quantize import qat_fine_tune

            source, plan, history = qat_fine_tune(model, x_train, y_train, qat.batches, epochs=qat.epochs,
                                                  lr=qat.lr, class_weight=qat.class_weight, seed=qat.seed)
            info["qat"] = {"epochs": qat.epochs, "lr": qat.lr, **plan.summary(),
                           "final_train_accuracy": history.get("accuracy", [None])[-1]}
        blob, checked = convert_checked(source, fmt.quant, x_train)
        atomic.write_bytes(path, blob)
        info.update(checked, quantization=TFLiteModel(path).quantization())
        return info

    def load(self, path):
        from mer_keras.runtime.tflite import TFLiteModel

        model = TFLiteModel(path)
        return lambda x, batch_size=64: model.predict(x)
