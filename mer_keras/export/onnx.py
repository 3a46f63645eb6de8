"""ONNX export (tf2onnx) and ONNX inference (onnxruntime), for Jetson users: TensorRT builds its
engine from the ONNX file (``trtexec --onnx=model.onnx --saveEngine=model.plan [--fp16]``).

tf2onnx converts the model's inference function (float32 input ``(None, *input_shape)`` named
``input``, in [0, 255] as every export here; the class probabilities as output ``probabilities``)
at a fixed opset. Its packages are an extra (``pip install "mer-keras[onnx]"``, also in ``[test]``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mer_keras import atomic
from mer_keras.errors import OptionError

#: The ONNX opset written (supported by onnxruntime >= 1.14 and TensorRT >= 8.6).
OPSET = 17
#: What to install when the converter or the runtime is missing.
INSTALL = 'pip install "mer-keras[onnx]" (tf2onnx, onnx, onnxruntime)'


def _require(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise OptionError(f"ONNX needs {module}, which is not installed: {INSTALL}") from None


def convert_onnx(model, path: Path) -> dict:
    """Write ``model`` (a single-output Keras classifier) as ONNX at ``path``, atomically.

    Args:
        model: ``keras.Model`` taking float32 (B, *input_shape) in [0, 255].
    Returns:
        {"opset", "input": [name, shape], "output": name}.
    Raises:
        OptionError: tf2onnx is not installed (the message says what to install).
    """
    tf2onnx = _require("tf2onnx")
    from mer_keras._keras import tf

    spec = (tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name="input"),)

    @tf.function(input_signature=spec)
    def probabilities(x):
        return {"probabilities": model(x, training=False)}

    proto, _ = tf2onnx.convert.from_function(probabilities, input_signature=spec, opset=OPSET)
    atomic.write_bytes(Path(path), proto.SerializeToString())
    return {"opset": OPSET, "input": ["input", [None, *model.input_shape[1:]]], "output": "probabilities"}


def predict_onnx(path: Path, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """(N, K) float32 probabilities of an ONNX model (onnxruntime, CPU) on (N, ...) float32 inputs.

    Raises:
        OptionError: onnxruntime is not installed. ValueError: a file onnxruntime cannot load.
    """
    ort = _require("onnxruntime")
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own InvalidProtobuf, Fail, ...: none names the file
        raise ValueError(f"{path}: not a loadable ONNX model ({type(exc).__name__}: {exc})") from None
    name = session.get_inputs()[0].name
    x = np.asarray(x, np.float32)
    return np.concatenate([session.run(None, {name: x[i:i + batch_size]})[0] for i in range(0, len(x), batch_size)])
