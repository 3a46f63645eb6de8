"""Transfer learning: initialise a model from another one's weights, layer by layer."""

from __future__ import annotations

from mer_keras._keras import keras
from mer_keras.errors import OptionError


def initialise_from(model: keras.Model, source: str, freeze_until: str | None = None) -> dict:
    """Copy weights into ``model`` from another model, layer by layer (transfer learning).

    A layer receives the source's weights when the source has a layer of the same name whose
    weight shapes all match (so a new classifier width or input size leaves those layers alone).

    Args:
        source: a ``.keras`` file or a run folder holding ``model.keras``.
        freeze_until: name of a layer of ``model``; it and every layer before it (in
            ``model.layers`` order) are set non-trainable.
    Returns:
        {"copied": [layer names], "skipped": [layer names with weights but no match], "frozen": n}.
    Raises:
        ModelFileError: the source cannot be loaded. OptionError: no layer matched,
        ``freeze_until`` is not a layer of the model (the message lists close names), or a layer to
        freeze was not copied (it would stay frozen at random weights).
    """
    from mer_keras.models.io import load_model

    src = load_model(source)
    src_layers = {layer.name: layer for layer in src.layers}
    copied, skipped = [], []
    for layer in model.layers:
        if not layer.weights:
            continue
        other = src_layers.get(layer.name)
        if other is not None and [w.shape for w in other.weights] == [w.shape for w in layer.weights]:
            layer.set_weights(other.get_weights())
            copied.append(layer.name)
        else:
            skipped.append(layer.name)
    if not copied:
        raise OptionError(f"--init-from {source}: no layer of {model.name} matches a layer of {src.name} "
                          "by name and weight shapes")
    frozen = 0
    if freeze_until:
        names = [layer.name for layer in model.layers]
        if freeze_until not in names:
            import difflib

            close = difflib.get_close_matches(freeze_until, names, n=5, cutoff=0.3)
            raise OptionError(f"--freeze-until {freeze_until!r} is not a layer of {model.name}; close: {close}")
        to_freeze = model.layers[:names.index(freeze_until) + 1]
        random = [layer.name for layer in to_freeze if layer.name in skipped]
        if random:
            raise OptionError(f"--freeze-until {freeze_until}: layers {random[:5]} were not copied from {source} "
                              "(no layer of that name and shape) and would stay frozen at random weights")
        for layer in to_freeze:
            layer.trainable = False
            frozen += 1
    return {"copied": copied, "skipped": skipped, "frozen": frozen}
