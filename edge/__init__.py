"""Deployable runner: numpy + opencv + mediapipe + ai-edge-litert, ``mer_keras.preprocess`` and
``mer_keras.runtime`` (the TFLite wrapper and the metadata.json schema); no TensorFlow.

Never imports tensorflow or mer_keras training code (tests/e2e/test_edge.py runs it with both blocked).
"""
