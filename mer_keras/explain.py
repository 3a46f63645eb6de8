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

import json
from pathlib import Path

import numpy as np

from mer_keras import atomic


def spatial_layers(model) -> list[str]:
    """Names of the layers whose output is a spatial map: (B, H, W, C) or (B, T, H, W, C) with H, W > 1."""
    out = []
    for layer in model.layers:
        shape = layer.output_shape
        if isinstance(shape, tuple) and len(shape) in (4, 5) and shape[-3] and shape[-3] > 1 and shape[-2] > 1:
            out.append(layer.name)
    return out


def default_layer(model, registered: str | None = None) -> str:
    """The layer to explain: the model's registered ``explain_layer`` (a map that sees every stream
    or the shared features), else the last spatial layer before the classifier.

    Raises:
        ValueError: the model has no spatial layer.
    """
    names = [n for n in spatial_layers(model) if n != "input" and not n.startswith("input")]
    if registered and registered in names:
        return registered
    if not names:
        raise ValueError(f"model {model.name} has no layer with a spatial output to explain")
    return names[-1]


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
        ValueError: unknown layer (the message lists the spatial ones).
    """
    from mer_keras._keras import keras, tf

    names = [lay.name for lay in model.layers]
    if layer not in names:
        raise ValueError(f"no layer {layer!r} in {model.name}; spatial layers: {', '.join(spatial_layers(model)[-8:])}")
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


def find_sample(samples, sample_id: str):
    """The sample whose key, ``subject/clip`` or clip id is ``sample_id``.

    Raises:
        KeyError: no sample matches, or a bare clip id matches several (the message gives examples).
    """
    hits = [s for s in samples if sample_id in (s.key, f"{s.subject}/{s.clip_id}")]
    if not hits:
        hits = [s for s in samples if s.clip_id == sample_id]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise KeyError(f"sample {sample_id!r} is ambiguous: {', '.join(s.key for s in hits[:5])}; give subject/clip")
    examples = ", ".join(f"{s.subject}/{s.clip_id}" for s in samples[:3])
    raise KeyError(f"no sample {sample_id!r} in this run's data ({len(samples)} clips, e.g. {examples})")


def explain(run: str | Path, sample_id: str, layer: str | None = None, class_name: str | None = None,
            out: str | Path | None = None, console=None) -> Path:
    """Write the Grad-CAM PNG of one sample of a run's data.

    Args:
        run: run folder (config.json, metadata.json, model.keras). sample_id: see :func:`find_sample`.
        layer: layer to explain (default :func:`default_layer`). class_name: class to explain
        (default: the predicted one). out: PNG path (default ``RUN/explain/<subject>_<clip>.png``).
    Returns:
        The PNG path. The figure shows the input, the map over it, and the class probabilities.
    Raises:
        ModelFileError, FileNotFoundError: missing run files. KeyError: unknown sample or class.
        ValueError: unknown layer.
    """
    import matplotlib

    matplotlib.use("Agg")
    import cv2
    import matplotlib.pyplot as plt
    from rich.console import Console

    from mer_keras.data.pipeline import RepresentationConfig, build_inputs
    from mer_keras.data.synthetic import default_cache_dir
    from mer_keras.models.io import ModelFileError, load_model
    from mer_keras.registry import get_spec
    from mer_keras.train.run import load_run_data, options_from_config

    console = console or Console()
    run = Path(run)
    try:
        config = json.loads((run / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{run / 'config.json'}: cannot read the run's configuration ({exc})") from None
    try:
        classes = list(config["classes"])
        opts = options_from_config(config)
        rep = RepresentationConfig.from_dict(config["representation_config"])
        explain_layer = get_spec(config["model"]).explain_layer
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{run / 'config.json'}: missing or invalid field ({type(exc).__name__}: {exc})") from None
    model = load_model(run)
    data = load_run_data(opts, console)
    sample = find_sample(data.samples, sample_id)
    x = build_inputs([sample], rep, cache_dir=default_cache_dir(opts.cache_dir))[0]
    layer = layer or default_layer(model, explain_layer)
    if class_name is not None and class_name not in classes:
        raise KeyError(f"unknown class {class_name!r}; the run's classes are {classes}")
    cam, probs = grad_cam(model, x, layer, classes.index(class_name) if class_name else None)
    shown = classes.index(class_name) if class_name else int(probs.argmax())
    image = display_image(x, rep.representation)
    heat = cv2.resize(cam, image.shape[1::-1], interpolation=cv2.INTER_LINEAR)

    fig, axes = plt.subplots(1, 3, figsize=(10, 3.4), gridspec_kw={"width_ratios": [1, 1, 0.9]})
    axes[0].imshow(image)
    axes[0].set_title(f"{rep.representation}\n{sample.subject}/{sample.clip_id} ({sample.label})", fontsize=9)
    axes[1].imshow(image.mean(-1), cmap="gray")
    axes[1].imshow(heat, cmap="jet", alpha=0.45, vmin=0, vmax=1)
    axes[1].set_title(f"Grad-CAM of '{classes[shown]}'\nlayer {layer} {cam.shape}", fontsize=9)
    for ax in axes[:2]:
        ax.axis("off")
    axes[2].barh(classes, probs, color=["tab:red" if k == shown else "tab:gray" for k in range(len(classes))])
    axes[2].set_xlim(0, 1)
    axes[2].set_title("probabilities", fontsize=9)
    fig.tight_layout()
    path = Path(out) if out else run / "explain" / f"{sample.subject}_{sample.clip_id}.png".replace("/", "_")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
    console.print(f"{sample.key}: predicted {classes[int(probs.argmax())]} "
                  f"({probs.max():.2f}), label {sample.label}; Grad-CAM of layer {layer}", soft_wrap=True)
    return path
