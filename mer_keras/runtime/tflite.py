"""A TFLite micro-expression classifier on the ai-edge-litert interpreter.

Depends on numpy and ai-edge-litert only: this is what runs on a Jetson, a Raspberry Pi or in a
phone-side prototype, with no TensorFlow and none of the package's training code. The ``edge/``
runner and the package (export verification, ``mer-keras evaluate``) both use this class, so the
device and the package score a model identically.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from mer_keras.errors import DataError, ModelFileError, OptionError


class TFLiteModel:
    """A ``.tflite`` classifier run with the ai-edge-litert interpreter (no TensorFlow needed).

    Quantizes float inputs and dequantizes outputs when the model's tensors are integer.

    Args:
        path_or_bytes: model file path or flatbuffer bytes. num_threads: interpreter threads.
        delegate: path of an external delegate library (e.g. the TFLite GPU delegate
            ``libtensorflowlite_gpu_delegate.so`` built for a Jetson); ``None`` runs on the CPU with
            XNNPACK, which ai-edge-litert applies by default.
    Raises:
        ModelFileError: the file is not a valid TFLite model. OptionError: the delegate does not load
            (named). Both are ValueErrors.
    """

    def __init__(self, path_or_bytes, num_threads: int | None = None, delegate: str | None = None):
        from ai_edge_litert.interpreter import Interpreter, load_delegate

        name = "<bytes>"
        delegates = None
        if delegate:
            # checked first: litert's failed Delegate prints a traceback when collected
            if not Path(delegate).is_file():
                raise OptionError(f"{delegate}: cannot load the TFLite delegate (no such file)")
            try:
                delegates = [load_delegate(delegate)]
            except (ValueError, OSError, RuntimeError) as exc:
                raise OptionError(f"{delegate}: cannot load the TFLite delegate ({exc})") from None
        from mer_keras.native import quiet_native_stderr

        try:
            with quiet_native_stderr():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
                if isinstance(path_or_bytes, (bytes, bytearray)):
                    self.interpreter = Interpreter(model_content=bytes(path_or_bytes), num_threads=num_threads,
                                                   experimental_delegates=delegates)
                else:
                    name = str(path_or_bytes)
                    if not Path(name).is_file():
                        raise FileNotFoundError(name)
                    self.interpreter = Interpreter(model_path=name, num_threads=num_threads,
                                                   experimental_delegates=delegates)
                self.interpreter.allocate_tensors()
        except Exception as exc:
            raise ModelFileError(f"{name}: not a loadable TFLite model ({type(exc).__name__}: {exc})") from exc
        self.name = name
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self._batch = int(self.input["shape"][0])
        # A model converted with a static batch (recurrent models: ConvLSTM) runs that many at a time.
        self.fixed_batch = int(self.input["shape_signature"][0]) if self.input["shape_signature"][0] > 0 else None

    @property
    def input_shape(self) -> tuple[int, ...]:
        """(H, W, C) of one input."""
        return tuple(int(d) for d in self.input["shape"][1:])

    @property
    def num_outputs(self) -> int:
        """K: class probabilities per input (the output tensor's last dimension)."""
        return int(self.output["shape"][-1])

    @property
    def input_dtype(self):
        """numpy dtype of the input tensor: ``np.float32``, or ``np.int8`` for full-integer models."""
        return self.input["dtype"]

    def _resize(self, batch: int) -> None:
        if batch != self._batch:
            self.interpreter.resize_tensor_input(self.input["index"], [batch, *self.input_shape])
            self.interpreter.allocate_tensors()
            self.input = self.interpreter.get_input_details()[0]
            self.output = self.interpreter.get_output_details()[0]
            self._batch = batch

    def predict(self, x: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Class probabilities.

        Args:
            x: (N, H, W, C) float32 in the model's input range ([0, 255]).
        Returns:
            (N, K) float32 probabilities (dequantized for int8 models).
        Raises:
            DataError: ``x`` does not match the model's input shape.
        """
        x = np.asarray(x, np.float32)
        if x.shape[1:] != self.input_shape:
            raise DataError(f"{self.name}: input shape {x.shape[1:]} does not match the model's {self.input_shape}")
        outs = []
        batch_size = self.fixed_batch or batch_size
        for start in range(0, len(x), batch_size):
            chunk = x[start:start + batch_size]
            if self.fixed_batch:
                n = len(chunk)
                chunk = (np.concatenate([chunk, np.repeat(chunk[-1:], self.fixed_batch - n, axis=0)])
                         if n < self.fixed_batch else chunk)
            else:
                self._resize(len(chunk))
            scale, zero = self.input["quantization"]
            if self.input["dtype"] != np.float32:
                info = np.iinfo(self.input["dtype"])
                chunk = np.clip(np.round(chunk / scale + zero), info.min, info.max).astype(self.input["dtype"])
            self.interpreter.set_tensor(self.input["index"], chunk)
            self.interpreter.invoke()
            out = self.interpreter.get_tensor(self.output["index"])
            if self.output["dtype"] != np.float32:
                o_scale, o_zero = self.output["quantization"]
                out = (out.astype(np.float32) - o_zero) * o_scale
            outs.append(np.asarray(out, np.float32)[:len(x) - start])
        return np.concatenate(outs)

    def quantization(self) -> dict:
        """Input and output (scale, zero_point) pairs; (0.0, 0) for float tensors."""
        return {"input": [float(self.input["quantization"][0]), int(self.input["quantization"][1])],
                "output": [float(self.output["quantization"][0]), int(self.output["quantization"][1])]}


def open_checked(path: str | Path, classes: Sequence[str], files: dict | None = None,
                 source: str | Path = "metadata.json", allow_modified: bool = False,
                 warn: Callable[[str], None] | None = None, num_threads: int | None = None,
                 delegate: str | None = None) -> TFLiteModel:
    """A ``.tflite`` file checked against its ``metadata.json``, then opened.

    In order: the file's sha256 against ``files`` (when listed there; before the flatbuffer is
    parsed, so a damaged file never reaches the interpreter;
    :func:`mer_keras.runtime.metadata.verify_model_file`), the interpreter, and the output count
    against ``classes`` (:func:`mer_keras.runtime.metadata.check_output_count`).

    Args:
        path: the model file. classes: ``metadata.json``'s class names (checked:
            :func:`~mer_keras.runtime.metadata.check_classes`). files: its ``files``. source: the
            metadata.json, for messages. allow_modified, warn: as
            :func:`~mer_keras.runtime.metadata.verify_model_file`. num_threads, delegate: as
            :class:`TFLiteModel`.
    Returns:
        The :class:`TFLiteModel`.
    Raises:
        ModelFileError: a sha256 that differs (unless ``allow_modified``), a file that does not
            load, another number of outputs than classes, or invalid classes (each names the file).
        OptionError: the delegate does not load.
    """
    from mer_keras.runtime.metadata import check_classes, check_output_count, verify_model_file

    classes = check_classes(classes, source)
    if Path(path).is_file():  # a missing file is named by the interpreter's message below
        verify_model_file(path, files, source, allow_modified, warn)
    model = TFLiteModel(path, num_threads=num_threads, delegate=delegate)
    check_output_count(path, model.num_outputs, classes, source, allow_modified)
    return model
