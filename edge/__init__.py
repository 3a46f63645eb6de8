"""Deployable runner: numpy + opencv + mediapipe + ai-edge-litert, and ``mer_keras.preprocess`` (no TensorFlow).

Never imports tensorflow or mer_keras training code (tests/test_edge.py runs it with both blocked).
"""
