"""Deployable runner: numpy + opencv + ai-edge-litert (+ mediapipe). Never imports tensorflow or mer_keras."""
