"""Grad-CAM: the map of a model whose answer is known in closed form."""

import numpy as np

from mer_keras._keras import keras
from mer_keras.explain import default_layer, grad_cam


def test_grad_cam_uses_the_class_score_before_the_softmax():
    inputs = keras.Input((6, 6, 1))
    maps = keras.layers.Conv2D(2, 1, use_bias=False, name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(maps)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="predictions")(x))
    model.get_layer("conv").set_weights([np.array([[[[1.0, -1.0]]]], np.float32)])  # A0 = x, A1 = -x
    w = np.array([[3.0, 0.5], [1.0, 2.0]], np.float32)
    model.get_layer("predictions").set_weights([w, np.zeros(2, np.float32)])
    img = np.zeros((6, 6, 1), np.float32)
    img[1, 4] = 5.0
    img[3, 2] = 2.0
    cam, probs = grad_cam(model, img, "conv", class_index=0)
    # alpha_k = W[k, 0] / 36, so the map is relu(3 x - 1 x) / 36, normalised: img / max(img)
    np.testing.assert_allclose(cam, img[..., 0] / 5.0, atol=1e-6)
    assert probs[0] > 0.5
    # class 1: relu(0.5 x - 2 x) = 0 everywhere (the softmax gradient would not give zero here)
    cam1, _ = grad_cam(model, img, "conv", class_index=1)
    assert cam1.max() == 0.0
    assert default_layer(model) == "conv"
