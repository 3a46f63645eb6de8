"""Fitting and LOSO evaluation.

Honest protocol: every fold trains for a fixed number of epochs on the training subjects only;
nothing (epoch, threshold, checkpoint) is chosen by looking at the test subject. Class weights,
when on, come from the training labels of the fold.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from mer_keras._keras import gradient_registry, keras, tf
from mer_keras.data.protocols import LOSO, Fold
from mer_keras.registry import create_model
from mer_keras.train.metrics import compute_metrics


@dataclass
class TrainConfig:
    """Training hyper-parameters (one config for every fold and the final model).

    Attributes:
        model: registry name. epochs: fixed epoch count (no early stopping on test data).
        batch_size: global batch size (split over replicas). lr: Adam learning rate.
        seed: random seed (weights, shuffling, augmentation). augment: random horizontal flips
        (the u channel of a flow input is negated with the flip). class_weight: balanced class
        weights from the training labels. model_options: keyword options of the builder.
        flow_input: True when the input is a (u, v, strain) flow image.
        aux_weights: loss weights of auxiliary outputs, overriding the registry's defaults
            (e.g. ``{"proposal": 0.1}``); see :mod:`mer_keras.train.targets`.
        init_from: a ``.keras`` file or run folder whose weights initialise the model, layer by
            layer where names and shapes match (transfer learning).
        freeze_until: with ``init_from``, freeze every layer up to and including this one.
        deterministic: op determinism and seeded dropout (:func:`set_determinism`): the same seed
            gives the same weights and metrics on the same machine.
        mixed_precision: build under ``mixed_float16`` (GPU speed-up; outputs stay float32).
        backup_minutes: least time between two backups of a fit given a ``backup_dir`` (0: every epoch).
    """

    model: str = "learnet"
    epochs: int = 80
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 0
    augment: bool = True
    class_weight: bool = True
    model_options: dict = field(default_factory=dict)
    flow_input: bool = False
    aux_weights: dict = field(default_factory=dict)
    init_from: str | None = None
    freeze_until: str | None = None
    deterministic: bool = True
    mixed_precision: bool = False
    backup_minutes: float = 1.0

    def to_dict(self) -> dict:
        return asdict(self)


def _flip(img, flow_input: bool):
    """Mirror every frame horizontally; negate u of a flow image (stored as 127.5 + 127.5 u / scale)."""
    flipped = tf.image.flip_left_right(img)
    if flow_input:
        flipped = tf.concat([255.0 - flipped[..., :1], flipped[..., 1:]], axis=-1)
    return flipped


def make_dataset(x: np.ndarray, y=None, batch_size: int = 32, shuffle: bool = False,
                 augment: bool = False, flow_input: bool = False, seed: int = 0,
                 sample_weight=None) -> tf.data.Dataset:
    """tf.data pipeline over in-memory inputs (prediction, and the short QAT fine-tune).

    Training uses :func:`training_dataset`, whose order and flips are a function of the epoch.

    Args:
        x: (N, H, W, C) or (N, T, H, W, C) float32 in [0, 255].
        y: (N,) int labels, a dict of per-output targets, or None.
        sample_weight: (N,) float32 or a dict of them per output, or None.
    Returns:
        Batched dataset of x, (x, y) or (x, y, w). Flips mirror every frame horizontally and
        negate u (channel 0, stored as 127.5 + 127.5 u / scale, hence 255 - value) when ``flow_input``.
    """
    parts = (x,) + ((y,) if y is not None else ()) + ((sample_weight,) if sample_weight is not None else ())
    ds = tf.data.Dataset.from_tensor_slices(parts if len(parts) > 1 else x)
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    if augment:
        def flip(img, *rest):
            coin = tf.random.uniform((), seed=seed) < 0.5
            img = tf.where(coin, _flip(img, flow_input), img)
            return (img, *rest) if rest else img

        ds = ds.map(flip, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def training_dataset(x: np.ndarray, y, batch_size: int, epochs: int, seed: int = 0, augment: bool = False,
                     flow_input: bool = False, sample_weight=None, start_epoch: int = 0) -> tuple[tf.data.Dataset, int]:
    """The training batches of epochs ``start_epoch..epochs-1``, each epoch a pure function of (seed, epoch).

    Epoch ``e`` visits the N samples in the order ``stateless_shuffle(range(N), seed=(seed, e))`` and
    flips sample ``i`` when ``stateless_uniform(seed=(seed, e * N + i + 1)) < 0.5``. Nothing depends
    on how many epochs this process has already run, so a fold resumed at epoch k (Keras
    ``BackupAndRestore``) sees exactly the batches an uninterrupted run sees from epoch k on.

    Args:
        x: (N, ...) float32 in [0, 255]. y: (N,) int labels or a dict of per-output targets.
        batch_size: global batch. sample_weight: (N,) float32, a dict of them per output, or None.
    Returns:
        (dataset of (x, y[, w]) batches, steps per epoch = ceil(N / batch_size)); pass both to
        ``fit(..., steps_per_epoch=steps)``: the dataset runs through every remaining epoch once.
    """
    n = len(x)
    steps = -(-n // batch_size)
    parts = tf.nest.map_structure(tf.convert_to_tensor, (x, y) + ((sample_weight,) if sample_weight is not None else ()))
    seed64 = tf.constant(seed, tf.int64)

    def one_epoch(epoch):
        order = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=tf.stack([seed64, epoch]))
        ds = tf.data.Dataset.from_tensor_slices(order)

        def fetch(i):
            img, *rest = tf.nest.map_structure(lambda t: tf.gather(t, i), parts)
            if augment:
                coin = tf.random.stateless_uniform((), seed=tf.stack([seed64, epoch * n + i + 1])) < 0.5
                img = tf.where(coin, _flip(img, flow_input), img)
            return (img, *rest)

        return ds.map(fetch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).batch(batch_size)

    ds = tf.data.Dataset.range(start_epoch, epochs).flat_map(one_epoch)
    return ds.prefetch(tf.data.AUTOTUNE), steps


def balanced_class_weight(y: np.ndarray, num_classes: int) -> dict[int, float]:
    """sklearn's 'balanced' weights n / (K * n_k), K = classes present in ``y``.

    Args:
        y: (N,) int labels in [0, num_classes).
    Returns:
        {class index: weight} for every class 0..num_classes-1 (Keras requires all keys); a class
        absent from ``y`` gets 1.0, which has no effect since no sample carries it.
    """
    from sklearn.utils.class_weight import compute_class_weight

    present = np.unique(y)
    w = dict(zip(present.tolist(), compute_class_weight("balanced", classes=present, y=y)))
    return {k: float(w.get(k, 1.0)) for k in range(num_classes)}


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
        ModelFileError: the source cannot be loaded. ValueError: no layer matched,
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
        raise ValueError(f"--init-from {source}: no layer of {model.name} matches a layer of {src.name} "
                         "by name and weight shapes")
    frozen = 0
    if freeze_until:
        names = [layer.name for layer in model.layers]
        if freeze_until not in names:
            import difflib

            close = difflib.get_close_matches(freeze_until, names, n=5, cutoff=0.3)
            raise ValueError(f"--freeze-until {freeze_until!r} is not a layer of {model.name}; close: {close}")
        to_freeze = model.layers[:names.index(freeze_until) + 1]
        random = [layer.name for layer in to_freeze if layer.name in skipped]
        if random:
            raise ValueError(f"--freeze-until {freeze_until}: layers {random[:5]} were not copied from {source} "
                             "(no layer of that name and shape) and would stay frozen at random weights")
        for layer in to_freeze:
            layer.trainable = False
            frozen += 1
    return {"copied": copied, "skipped": skipped, "frozen": frozen}


def backup_epoch(backup_dir: str | Path) -> int:
    """The epoch a fit backed up by Keras ``BackupAndRestore`` in ``backup_dir`` continues at.

    Reads the ``ckpt_saved_epoch`` counter of the chief's checkpoint (``backup_dir/chief``), the
    value ``BackupAndRestore`` itself restores from.

    Returns:
        0 when there is no backup, else the last backed-up epoch + 1.
    Raises:
        ValueError: the backup exists but is unreadable (the message names it; delete it to
            restart the fold from epoch 0).
    """
    folder = Path(backup_dir) / "chief"
    latest = tf.train.latest_checkpoint(str(folder)) if folder.is_dir() else None
    if latest is None:
        return 0
    try:
        reader = tf.train.load_checkpoint(latest)
        return int(reader.get_tensor("ckpt_saved_epoch/.ATTRIBUTES/VARIABLE_VALUE")) + 1
    except (tf.errors.OpError, ValueError) as exc:
        raise ValueError(f"{latest}: unreadable training backup ({type(exc).__name__}); delete {backup_dir} to "
                         "restart this fold from epoch 0") from None


def set_determinism(on: bool) -> None:
    """Make training a function of the seed: TensorFlow op determinism and per-layer random generators.

    With ``on``: ``tf.config.experimental.enable_op_determinism()`` (deterministic kernels; on GPU
    some ops are slower, and an op without a deterministic kernel raises) and tf_keras' random
    generator for Dropout-like layers, which :class:`~mer_keras.train.callbacks.EpochSeeds`
    re-seeds at every epoch. Op determinism cannot be switched off again in the same process.
    """
    if on:
        tf.config.experimental.enable_op_determinism()
        keras.backend.experimental.enable_tf_random_generator()


@contextmanager
def precision_policy(mixed: bool):
    """Build layers under ``mixed_float16`` (float16 compute, float32 variables) when ``mixed``.

    Every zoo model's outputs are float32 layers (softmax and auxiliary heads), as the
    mixed-precision guide asks; ``compile`` then wraps the optimizer in a ``LossScaleOptimizer``.
    """
    if not mixed:
        yield
        return
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def local_float32_copy(model: keras.Model, cfg: "TrainConfig") -> keras.Model:
    """The model for saving and export: float32 and outside any distribution strategy (same weights).

    A model trained under mixed precision or a multi-worker strategy is rebuilt (under the default
    strategy and the float32 policy) and given its weights; any other model is returned as it is.
    """
    from mer_keras.train.strategy import is_multiworker

    mixed = any(layer.dtype_policy.name != "float32" for layer in model.layers)
    if not mixed and not is_multiworker(model.distribute_strategy):
        return model
    num_classes = model.get_layer("predictions").units
    clone = create_model(cfg.model, num_classes, input_shape=model.input_shape[1:], **cfg.model_options)
    clone.set_weights(model.get_weights())
    return clone


def fit_model(x: np.ndarray, y: np.ndarray, num_classes: int, cfg: TrainConfig,
              strategy: tf.distribute.Strategy | None = None, callbacks: Sequence = (),
              aus: Sequence[Sequence[str]] | None = None, backup_dir: str | Path | None = None) -> keras.Model:
    """Build, compile and fit one model on (x, y) for ``cfg.epochs`` epochs.

    Single-output models train with sparse cross-entropy (and Keras class weights). Models with
    auxiliary heads (registry ``aux_losses``) train all outputs in the same ``fit``: targets,
    weights and masks come from :func:`mer_keras.train.targets.build_targets`.

    Each epoch's batches, flips and dropout masks depend only on (``cfg.seed``, epoch) (see
    :func:`training_dataset`, :class:`~mer_keras.train.callbacks.EpochSeeds`), so with
    ``backup_dir`` a killed fit continues from its last backed-up epoch (Keras ``BackupAndRestore``:
    weights, optimizer state, epoch; every ``cfg.backup_minutes``) and ends with the weights of an
    uninterrupted fit.

    Args:
        x: (N, ...) inputs; y: (N,) int labels; aus: per sample its AUs (for AU heads), or None.
        backup_dir: folder for the per-epoch backup (removed when the fit ends), or None.
    Returns:
        The fitted ``keras.Model`` (its ``predictions`` output gives the softmax; float32 outputs
        also under ``cfg.mixed_precision``).
    Raises:
        ValueError: an unreadable backup in ``backup_dir``.
    """
    from mer_keras.registry import get_spec
    from mer_keras.train.callbacks import EpochSeeds, PeriodicBackupAndRestore
    from mer_keras.train.targets import aux_losses_for, build_targets

    spec = get_spec(cfg.model)
    strategy = strategy or tf.distribute.get_strategy()
    set_determinism(cfg.deterministic)
    keras.utils.set_random_seed(cfg.seed)
    cw = balanced_class_weight(y, num_classes) if cfg.class_weight else None
    start = backup_epoch(backup_dir) if backup_dir else 0
    with strategy.scope(), precision_policy(cfg.mixed_precision):
        model = create_model(cfg.model, num_classes, input_shape=x.shape[1:], **cfg.model_options)
        if cfg.init_from:
            initialise_from(model, cfg.init_from, cfg.freeze_until)
        if spec.aux_losses:
            loss, loss_weights = aux_losses_for(spec.aux_losses, cfg.aux_weights)
            model.compile(optimizer=keras.optimizers.Adam(cfg.lr), loss=loss, loss_weights=loss_weights,
                          metrics={"predictions": ["accuracy"]})
        else:
            model.compile(optimizer=keras.optimizers.Adam(cfg.lr), loss="sparse_categorical_crossentropy",
                          metrics=["accuracy"])
    fit_callbacks = [EpochSeeds(cfg.seed), *callbacks]
    if backup_dir:
        fit_callbacks.insert(0, PeriodicBackupAndRestore(str(backup_dir), 60.0 * cfg.backup_minutes))
    if spec.aux_losses:
        targets, weights = build_targets(y, aus, num_classes, spec.aux_losses, cw)
        ds, steps = training_dataset(x, targets, cfg.batch_size, cfg.epochs, cfg.seed, cfg.augment, cfg.flow_input,
                                     sample_weight=weights, start_epoch=start)
        model.fit(ds, epochs=cfg.epochs, steps_per_epoch=steps, verbose=0, callbacks=fit_callbacks)
    else:
        ds, steps = training_dataset(x, y, cfg.batch_size, cfg.epochs, cfg.seed, cfg.augment, cfg.flow_input,
                                     start_epoch=start)
        model.fit(ds, epochs=cfg.epochs, steps_per_epoch=steps, verbose=0, class_weight=cw, callbacks=fit_callbacks)
    from mer_keras.train.strategy import is_chief

    if backup_dir and is_chief(strategy):  # Keras removed its checkpoint; other workers may still write theirs
        import shutil

        shutil.rmtree(Path(backup_dir) / "chief", ignore_errors=True)
    return model


def weights_fingerprint(model: keras.Model) -> str:
    """First 16 hex digits of the SHA-256 of all weights (float32 bytes, in ``model.weights`` order).

    Workers of a multi-worker run print it after the final fit: equal fingerprints show they hold
    the same model.
    """
    import hashlib

    digest = hashlib.sha256()
    for w in model.get_weights():
        digest.update(np.ascontiguousarray(w, np.float32).tobytes())
    return digest.hexdigest()[:16]


def final_train_metrics(history: dict) -> tuple[float, float]:
    """(loss, accuracy) of the last epoch from a Keras history (single or multi-output).

    (None, None) when the fit ran no epoch in this process (resumed from a backup of its last epoch).
    """
    acc = history.get("accuracy", history.get("predictions_accuracy"))
    if not history.get("loss"):
        return None, None
    return float(history["loss"][-1]), float(acc[-1])


def predict_proba(model, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """(N, K) float32 class probabilities of a Keras model (its ``predictions`` output)."""
    out = model.predict(make_dataset(x, None, batch_size), verbose=0)
    if isinstance(out, dict):
        out = out["predictions"]
    return np.asarray(out, np.float32)


@contextmanager
def releasing_fit_memory():
    """Free, on exit, the weights and graphs of every model fitted inside the block.

    ``keras.backend.clear_session()`` alone does not: under any ``tf.distribute`` strategy
    (the default one included) the optimizer's gradient all-reduce is a graph-mode
    ``tf.custom_gradient``, which registers a ``CustomGradient-<n>`` function in TensorFlow's
    global gradient table for every traced ``train_function`` and never removes it. That
    function holds the traced graph, which holds the captured variable handles, so every fit
    keeps its weights and optimizer slots alive: HTNet (139.6 M parameters) leaked about 1.8 GB
    per LOSO fold and a 12-fold run was killed for lack of memory (24 GiB) when it reached the
    final fit. TensorFlow issue #97697; tf-keras pull request #898 proposes the same purge in
    ``clear_session``.

    On exit the block's models must no longer be used: this clears the Keras session, removes
    the ``CustomGradient`` entries registered inside the block (entries of graphs made before it
    are kept) and runs the garbage collector.
    """
    registry = gradient_registry()
    before = set(registry) if registry is not None else set()
    try:
        yield
    finally:
        keras.backend.clear_session()
        if registry is not None:
            for key in [k for k in registry if k.startswith("CustomGradient-") and k not in before]:
                del registry[key]
        gc.collect()


def run_loso(x: np.ndarray, y: np.ndarray, groups: Sequence[str], classes: Sequence[str], cfg: TrainConfig,
             strategy: tf.distribute.Strategy | None = None, only: Sequence[str] | None = None,
             fold_callbacks: Callable[[Fold], Sequence] | None = None,
             on_fold_end: Callable[[Fold, np.ndarray, dict], None] | None = None,
             aus: Sequence[Sequence[str]] | None = None, completed: dict[str, dict] | None = None,
             backup_root: str | Path | None = None) -> dict:
    """Leave-one-subject-out training and evaluation.

    Args:
        x: (N, H, W, C) inputs; y: (N,) int labels; groups: subject of each sample.
        only: run only these subjects' folds. aus: per sample its AUs (AU heads), or None.
        fold_callbacks: fold -> extra Keras callbacks (e.g. progress).
        on_fold_end: called with the fold, its (n_test, K) probabilities and its result row.
        completed: {fold name: {"probabilities": (n_test, K), "row": dict}} of folds finished by
            an earlier, interrupted run: they are not trained again (resume).
        backup_root: folder of per-fold training backups (``<backup_root>/<fold>``): a fold killed
            mid-way continues from its last finished epoch. None: no backups.
    Returns:
        {"probabilities": (N, K) array (NaN for samples in no test fold), "folds": [per-fold dict]}.
    """
    folds = LOSO().folds(groups, only=only)
    probs = np.full((len(x), len(classes)), np.nan, np.float32)
    fold_rows = []
    for fold in folds:
        if completed and fold.name in completed:
            probs[fold.test] = completed[fold.name]["probabilities"]
            fold_rows.append(completed[fold.name]["row"])
            continue
        with releasing_fit_memory():
            model = fit_model(x[fold.train], y[fold.train], len(classes), cfg, strategy,
                              callbacks=fold_callbacks(fold) if fold_callbacks else (),
                              aus=[aus[i] for i in fold.train] if aus is not None else None,
                              backup_dir=Path(backup_root) / fold.name.replace("/", "__") if backup_root else None)
            final_loss, final_acc = final_train_metrics(model.history.history)
            p = predict_proba(model, x[fold.test])
            del model
        probs[fold.test] = p
        m = compute_metrics(y[fold.test], p.argmax(1), classes)
        row = {"subject": fold.name, "n_train": int(len(fold.train)), "n_test": int(len(fold.test)),
               "accuracy": m["accuracy"], "uf1": m["uf1"], "uar": m["uar"],
               "final_train_loss": final_loss, "final_train_accuracy": final_acc}
        fold_rows.append(row)
        if on_fold_end:
            on_fold_end(fold, p, row)
    return {"probabilities": probs, "folds": fold_rows}
