"""Quiet native libraries: TensorFlow, its TFLite converter and mediapipe write lines to file
descriptor 2 from C++ (absl logging) that no log level reaches and that say nothing to a user.

Light: no TensorFlow, numpy or mediapipe import (the ``edge/`` runner and the preprocessing use it).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading

#: Lines the native side of TensorFlow and its TFLite converter print on stderr that say nothing to
#: a user: CUDA plugin registration and probing on a machine without a GPU, CPU-feature notes, and
#: the converter's internals. absl writes them before any log level applies, so they are filtered.
NATIVE_NOISE = ("All log messages before absl::InitializeLog()", "Unable to register cuDNN factory",
                "Unable to register cuFFT factory", "Unable to register cuBLAS factory",
                "computation placer already registered", "failed call to cuInit", "oneDNN custom operations are on",
                "This TensorFlow binary is optimized", "To enable the following instructions", "TF-TRT Warning",
                "fully_quantize:", "Estimated count of arithmetic ops", "Ignored output_format",
                "Ignored drop_control_dependency",
                "Reading SavedModel", "Reading meta graph", "Restoring SavedModel", "SavedModel load for tags",
                "Running initialization op", "Skipping loading of SavedModel", "Saved model with tags",
                "SavedModel bundle", "Unable to find SavedModel", "could not find TensorRT",
                "Created TensorFlow Lite XNNPACK delegate",  # TFLite's and mediapipe's (written in pieces)
                "Sharding callback duration", "Read SavedModel", "fp16 activations",
                "MLIR V1 optimization pass is not enabled",
                # mediapipe's face mesh (TFLite inside) when it starts and on its first image
                "Feedback manager requires a model with a single signature", "Using NORM_RECT without IMAGE_DIMENSIONS",
                "GL version:", "OpenGL error checking is disabled")


def verbose() -> bool:
    """Whether native output is shown unfiltered: ``MER_KERAS_VERBOSE=1`` (set by ``mer-keras
    --verbose``), or ``TF_CPP_MIN_LOG_LEVEL=0`` set by the user before mer_keras was imported
    (``MER_KERAS_USER_TF_LOG``, recorded by :mod:`mer_keras._keras`): the user asked for everything.
    A user's level of 1, 2 or 3 (the usual way to quiet TensorFlow) keeps the filter: it never shows
    more than the default does."""
    if os.environ.get("MER_KERAS_VERBOSE", "") not in ("", "0"):
        return True
    return os.environ.get("MER_KERAS_USER_TF_LOG", "").strip() == "0"


#: One redirection of descriptor 2 shared by every thread inside a :func:`quiet_native_stderr`
#: block: descriptor 2 belongs to the process, so a second thread's block must neither redirect it
#: again nor restore it while the first is still inside (native lines would escape between them).
_lock = threading.Lock()
_state = {"depth": 0, "saved": None, "captured": None}


@contextlib.contextmanager
def quiet_native_stderr():
    """Filter :data:`NATIVE_NOISE` out of what native code writes to file descriptor 2 in the block.

    The descriptor is redirected to a temporary file and the lines that are not noise are written
    back to ``sys.stderr`` when the last open block ends, errors included (an exception in the
    block still shows what TensorFlow said). Blocks nest and may be open in several threads at
    once: one redirection serves them all. Nothing is filtered when :func:`verbose`.
    """
    if verbose():
        yield
        return
    with _lock:
        if _state["depth"] == 0:
            sys.stderr.flush()
            _state["captured"] = tempfile.TemporaryFile()
            _state["saved"] = os.dup(2)
            os.dup2(_state["captured"].fileno(), 2)
        _state["depth"] += 1
    try:
        yield
    finally:
        with _lock:
            _state["depth"] -= 1
            if _state["depth"] == 0:
                saved, captured = _state["saved"], _state["captured"]
                os.dup2(saved, 2)
                os.close(saved)
                with captured:
                    captured.seek(0)
                    kept = [line for line in captured.read().decode(errors="replace").splitlines(keepends=True)
                            if line.strip() and not any(n in line for n in NATIVE_NOISE)]
                if kept:
                    sys.stderr.write("".join(kept))
                    sys.stderr.flush()
