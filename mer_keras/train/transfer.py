"""Transfer learning: initialise a model from another one's weights, layer by layer."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mer_keras._keras import keras
from mer_keras.errors import ModelFileError, OptionError
from mer_keras.runs import WEIGHTS_FILE


def resolve_init_source(source: str | Path) -> Path:
    """The file ``--init-from`` reads: a ``.keras`` model, a Keras HDF5 weights file (``.h5``), or a
    folder holding ``model.keras`` (a run) or :data:`WEIGHTS_FILE` (a released weights folder).

    The file is checked against the sha256 its ``metadata.json`` records, when there is one
    (:func:`mer_keras.runtime.metadata.verify_model_file`), before the run builds anything.

    Raises:
        ModelFileError: nothing loadable there, or a file that is not what its metadata.json
            records (the message names the path).
    """
    from mer_keras.models.io import metadata_beside, resolve_model_path
    from mer_keras.presets import resolve
    from mer_keras.runtime.metadata import verify_model_file

    p = resolve(source)  # a preset's name (micro_attention_synthetic_macro) is its folder
    if p.is_dir() and not (p / "model.keras").exists() and (p / WEIGHTS_FILE).is_file():
        p = p / WEIGHTS_FILE
    if p.suffix == ".h5":
        if not p.is_file():
            raise ModelFileError(f"no weights file at {p}")
    else:
        p = resolve_model_path(p)
    found = metadata_beside(p)
    if found is not None:
        verify_model_file(p, found[1].get("files"), found[0], can_allow=False)  # train takes no --allow-modified
    return p


def save_weights_fp16(model: keras.Model, path: str | Path) -> int:
    """Write ``model``'s weights as a Keras HDF5 weights file with float16 values, atomically: half
    the size of float32, for released initial weights (``--init-from`` casts them back to the
    model's float32; the rounding, a relative 2^-11, is far below what fine-tuning changes).

    Returns:
        The number of weight values written.
    Raises:
        OSError: the folder is not writable (nothing is left at ``path``).
    """
    import tempfile

    import h5py

    from mer_keras import atomic

    n = 0
    with tempfile.TemporaryDirectory() as tmp_dir, atomic.atomic_path(path) as out:
        full = Path(tmp_dir) / "weights.h5"
        model.save_weights(str(full), save_format="h5")
        with h5py.File(full, "r") as src, h5py.File(out, "w") as dst:
            dst.attrs.update(dict(src.attrs))

            def copy(name, obj):
                nonlocal n
                if isinstance(obj, h5py.Dataset):
                    data = obj[()]
                    dst.create_dataset(name, data=data.astype(np.float16) if data.dtype.kind == "f" else data)
                    n += data.size
                else:
                    dst.require_group(name).attrs.update(dict(obj.attrs))

            src.visititems(copy)
    return n


def read_layer_weights(path: str | Path) -> tuple[str, dict[str, list[np.ndarray]]]:
    """Layer name -> weight arrays of a Keras HDF5 weights file (``model.save_weights(path,
    save_format="h5")``: a ``layer_names`` attribute, one group per layer listing its
    ``weight_names``), as stored (float16 in a released file; the model casts them on assignment).

    Returns:
        (a name for messages, {layer name: [arrays]}) with only the layers that hold weights.
    Raises:
        ModelFileError: not an HDF5 file, or not in that layout (the message names the file).
    """
    import h5py

    def text(v):
        return v.decode() if isinstance(v, bytes) else str(v)

    try:
        with h5py.File(path, "r") as f:
            if "layer_names" not in f.attrs:
                raise ModelFileError(f"{path}: an HDF5 file without Keras' layer_names attribute: not a weights file "
                                     "saved by model.save_weights(..., save_format='h5')")
            layers = {}
            for name in map(text, f.attrs["layer_names"]):
                group = f[name]
                arrays = [np.asarray(group[text(w)]) for w in group.attrs.get("weight_names", [])]
                if arrays:
                    layers[name] = arrays
    except (OSError, KeyError) as exc:
        raise ModelFileError(f"{path}: not a readable Keras HDF5 weights file ({exc})") from None
    return Path(path).name, layers


def initialise_from(model: keras.Model, source: str, freeze_until: str | None = None) -> dict:
    """Copy weights into ``model`` from another model, layer by layer (transfer learning).

    A layer receives the source's weights when the source has a layer of the same name whose
    weight shapes all match (so a new classifier width or input size leaves those layers alone).

    Args:
        source: a ``.keras`` file, a Keras HDF5 weights file, or a folder holding either
            (:func:`resolve_init_source`).
        freeze_until: name of a layer of ``model``; it and every layer before it (in
            ``model.layers`` order) are set non-trainable.
    Returns:
        {"copied": [layer names], "skipped": [layer names with weights but no match], "frozen": n}.
    Raises:
        ModelFileError: the source cannot be loaded. OptionError: no layer matched,
        ``freeze_until`` is not a layer of the model (the message lists close names), or a layer to
        freeze was not copied (it would stay frozen at random weights).
    """
    path = resolve_init_source(source)
    if path.suffix == ".h5":
        src_name, src_layers = read_layer_weights(path)
    else:
        from mer_keras.models.io import load_model

        src = load_model(path)
        src_name, src_layers = src.name, {layer.name: layer.get_weights() for layer in src.layers if layer.weights}
    copied, skipped = [], []
    for layer in model.layers:
        if not layer.weights:
            continue
        other = src_layers.get(layer.name)
        if other is not None and [tuple(w.shape) for w in other] == [tuple(w.shape) for w in layer.weights]:
            layer.set_weights([np.asarray(w, dtype=v.dtype.as_numpy_dtype) for w, v in zip(other, layer.weights)])
            copied.append(layer.name)
        else:
            skipped.append(layer.name)
    if not copied:
        raise OptionError(f"--init-from {source}: no layer of {model.name} matches a layer of {src_name} "
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
