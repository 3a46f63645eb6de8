"""Response maps of a trained model: Grad-CAM of one sample, as a PNG (``mer-keras explain``).

Grad-CAM (Selvaraju et al., ICCV 2017, Eqs. 1-2): for the class c to explain and a convolutional
layer with maps A^k (H' x W' x K), the weights alpha_k = mean over (i, j) of d y^c / d A^k_ij and
the map ReLU(sum_k alpha_k A^k), scaled to [0, 1] and resized to the input. For sequence models
(maps of shape T x H' x W' x K) the map is averaged over time. The LEARNet paper shows the
responses of its accretion layers in the same spirit; ``--layer`` picks any layer with a spatial
output.

The run's ``model.keras`` is the final model, fitted on every subject: the map shows what that
model responds to, not a held-out prediction (the LOSO predictions are in predictions.csv).
"""

from __future__ import annotations

import numpy as np

from mer_keras.errors import ModelFileError, UnknownNameError


def spatial_layers(model) -> list[str]:
    """Names of the layers whose output is a spatial map: (B, H, W, C) or (B, T, H, W, C) with H, W > 1."""
    out = []
    for layer in model.layers:
        shape = layer.output_shape
        if isinstance(shape, tuple) and len(shape) in (4, 5) and shape[-3] and shape[-3] > 1 and shape[-2] > 1:
            out.append(layer.name)
    return out


def default_layer(model, registered: str | tuple[str, ...] | None = None) -> str:
    """The layer to explain: the model's registered ``explain_layer`` (a map that sees every stream
    or the shared features), else the last spatial layer before the classifier.

    Raises:
        ModelFileError: the model has no spatial layer.
    """
    names = [n for n in spatial_layers(model) if n != "input" and not n.startswith("input")]
    for candidate in (registered,) if isinstance(registered, str) else registered or ():
        if candidate in names:  # one name per variant where variants differ
            return candidate
    if not names:
        raise ModelFileError(f"model {model.name} has no layer with a spatial output to explain")
    return names[-1]


def check_layer(model, layer: str) -> None:
    """Refuse a layer Grad-CAM cannot explain: one the model lacks, or one without a spatial output.

    Raises:
        UnknownNameError: the layer, what is wrong with it, and the layers that can be explained.
    """
    names = [n for n in spatial_layers(model) if n != "input" and not n.startswith("input")]
    allowed = f"layers with a spatial output: {', '.join(names[-8:]) or 'none in this model'}"
    if layer not in [lay.name for lay in model.layers]:
        raise UnknownNameError(f"--layer {layer}: no layer {layer!r} in {model.name}; {allowed}")
    if layer not in spatial_layers(model):
        shape = model.get_layer(layer).output_shape
        raise UnknownNameError(f"--layer {layer}: layer {layer!r} of {model.name} has no spatial output (shape "
                               f"{shape}), so Grad-CAM has no map to draw; {allowed}")


def grad_cam(model, x: np.ndarray, layer: str, class_index: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM map of one input.

    Args:
        model: single-output Keras classifier whose last layer, ``predictions``, is a softmax Dense
            layer. x: one input, ``model.input_shape[1:]``, float32.
        layer: name of a spatial layer. class_index: class to explain (default: the prediction).
    Returns:
        ``(cam, probabilities)``: (H', W') float32 in [0, 1] at the layer's resolution, and (K,)
        float32 class probabilities.
    Raises:
        UnknownNameError: unknown layer, or one without a spatial output (the message lists the
            spatial ones).
    """
    from mer_keras._keras import keras, tf

    check_layer(model, layer)
    head = model.get_layer("predictions")
    probe = keras.Model(model.inputs, [model.get_layer(layer).output, head.input, model.output])
    kernel, bias = head.get_weights()
    xb = tf.convert_to_tensor(np.asarray(x, np.float32)[None])
    with tf.GradientTape() as tape:
        maps, features, probs = probe(xb, training=False)
        c = int(tf.argmax(probs[0])) if class_index is None else int(class_index)
        # y^c is the class score before the softmax (Selvaraju et al.): the softmax output's
        # gradient vanishes for confident predictions and mixes in the other classes.
        score = tf.reduce_sum(features * kernel[:, c], axis=-1) + bias[c]
    grads = tape.gradient(score, maps)
    axes = tuple(range(1, len(maps.shape) - 1))
    alpha = tf.reduce_mean(grads, axis=axes, keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(alpha * maps, axis=-1))[0].numpy()
    if cam.ndim == 3:  # (T, H', W'): average over time
        cam = cam.mean(0)
    cam = cam / cam.max() if cam.max() > 0 else cam
    return cam.astype(np.float32), probs[0].numpy().astype(np.float32)


def display_image(x: np.ndarray, representation: str) -> np.ndarray:
    """An (H, W, 3) float image in [0, 1] to show an input: RGB as is, grayscale repeated, flow as
    (u, v, strain) in the RGB channels, and a sequence by its middle frame."""
    x = np.asarray(x, np.float32)
    if representation == "sequence":
        x = x[len(x) // 2]
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    return np.clip(x / 255.0, 0.0, 1.0)
