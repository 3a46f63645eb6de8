"""TF-free runtime shared by the ``edge/`` runner and the package: the TFLite model wrapper
(:mod:`mer_keras.runtime.tflite`) and the ``metadata.json`` schema (:mod:`mer_keras.runtime.metadata`).

Nothing here imports TensorFlow, tf_keras or the package's training code: numpy, ai-edge-litert and
:mod:`mer_keras.preprocess` only (tests/unit/test_runtime.py imports it with TensorFlow blocked).
"""
