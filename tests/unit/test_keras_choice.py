"""TF_USE_LEGACY_KERAS is set in one place, and Keras is tf_keras."""

import os
import re
from pathlib import Path

import mer_keras
from mer_keras._keras import keras, tf

PKG = Path(mer_keras.__file__).parent


def test_legacy_keras_active():
    assert os.environ["TF_USE_LEGACY_KERAS"] == "1"
    assert keras.__name__.startswith("tf_keras")
    assert tf.keras.Model is keras.Model


def test_only_keras_module_imports_tensorflow_or_tf_keras():
    offenders = []
    for path in PKG.rglob("*.py"):
        if path.name == "_keras.py":
            continue
        text = path.read_text()
        if re.search(r"^\s*(import|from)\s+(tensorflow|tf_keras|keras)\b", text, re.M) or "TF_USE_LEGACY_KERAS" in text:
            offenders.append(str(path.relative_to(PKG)))
    assert offenders == []


def test_preprocessing_imports_no_tensorflow():
    """The edge runner shares mer_keras.preprocess on devices without TensorFlow."""
    import subprocess
    import sys

    code = ("import sys, mer_keras.preprocess.representation, mer_keras.preprocess.frames, mer_keras.preprocess.video; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras', 'keras')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
