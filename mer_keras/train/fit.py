"""Fitting one model: the training config, build-compile-fit, training backups, and what a fit leaves.

Honest protocol: every fit trains for a fixed number of epochs on the training data only;
nothing (epoch, threshold, checkpoint) is chosen by looking at test data. Class weights,
when on, come from the training labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mer_keras._keras import keras, tf
from mer_keras.data.weights import balanced_class_weight
from mer_keras.errors import RunFolderError
from mer_keras.factory import create_model
from mer_keras.train.config import TrainConfig
from mer_keras.train.determinism import precision_policy, set_determinism
from mer_keras.train.tfdata import training_dataset
from mer_keras.train.timing import EpochClock, phase
from mer_keras.train.transfer import initialise_from


def backup_epoch(backup_dir: str | Path) -> int:
    """The epoch a fit backed up by Keras ``BackupAndRestore`` in ``backup_dir`` continues at.

    Reads the ``ckpt_saved_epoch`` counter of the chief's checkpoint (``backup_dir/chief``), the
    value ``BackupAndRestore`` itself restores from.

    Returns:
        0 when there is no backup, else the last backed-up epoch + 1.
    Raises:
        RunFolderError: the backup exists but is unreadable (the message names it; delete it to
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
        raise RunFolderError(f"{latest}: unreadable training backup ({type(exc).__name__}); delete {backup_dir} to "
                             "restart this fold from epoch 0") from None


def local_float32_copy(model: keras.Model, cfg: TrainConfig) -> keras.Model:
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


def compile_model(model: keras.Model, cfg: TrainConfig) -> None:
    """Compile ``model`` for training with Adam at ``cfg.lr`` (default: the registry's rate).

    Single-output models: sparse cross-entropy (label-smoothed with ``cfg.label_smoothing``) and
    accuracy. Models with auxiliary heads (registry ``aux_losses``): one loss per output, weighted
    (:func:`mer_keras.train.targets.aux_losses_for`).
    """
    from mer_keras.train.targets import aux_losses_for

    spec = cfg.spec
    classification = "sparse_categorical_crossentropy"
    if cfg.label_smoothing:
        from mer_keras.train.targets import SmoothedSparseCrossentropy

        classes = model.get_layer("predictions").output_shape[-1]
        classification = SmoothedSparseCrossentropy(cfg.label_smoothing, classes)
    if spec.aux_losses:
        loss, loss_weights = aux_losses_for(spec.aux_losses, cfg.aux_weights)
        loss["predictions"] = classification
        model.compile(optimizer=make_optimizer(cfg), loss=loss, loss_weights=loss_weights,
                      metrics={"predictions": ["accuracy"]})
    else:
        model.compile(optimizer=make_optimizer(cfg), loss=classification, metrics=["accuracy"])


def make_optimizer(cfg: TrainConfig):
    """Keras' Adam of every fit, one fold or many: rate :func:`learning_rate`, with ``cfg.weight_decay``
    (decoupled, AdamW) and ``cfg.ema`` (a moving average of the weights, written into the model when
    the fit ends) when set. Both act element by element, so a program of folds applies them to each
    fold as the fold alone gets them."""
    return keras.optimizers.Adam(learning_rate(cfg), weight_decay=cfg.weight_decay or None,
                                 use_ema=cfg.ema > 0, ema_momentum=cfg.ema if cfg.ema > 0 else 0.99)


def learning_rate(cfg: TrainConfig) -> float:
    """Adam's rate: ``cfg.lr``, or the model's registered rate when it is None."""

    return cfg.lr if cfg.lr is not None else cfg.spec.learning_rate


def remove_fit_backup(backup_dir: str | Path | None, strategy: tf.distribute.Strategy) -> None:
    """After a finished fit: remove the chief's backup folder (Keras removed its checkpoint; other
    workers may still write theirs)."""
    from mer_keras.train.strategy import is_chief

    if backup_dir and is_chief(strategy):
        import shutil

        shutil.rmtree(Path(backup_dir) / "chief", ignore_errors=True)


class OptimizerState:
    """A snapshot of an optimizer's variables (step counter, Adam moments) to return to.

    Args:
        optimizer: a built tf_keras optimizer (its slots exist).
    """

    def __init__(self, optimizer):
        self.variables = list(optimizer.variables)
        self.values = [v.numpy() for v in self.variables]

    def restore(self) -> None:
        """Assign every variable its snapshot value (under a strategy: on every replica)."""
        for variable, value in zip(self.variables, self.values):
            variable.assign(value)


class FoldTrainer:
    """One model built, initialised and compiled once per job; every :meth:`fit` starts it afresh.

    Building a model, compiling it and tracing its training step cost more than the training of a
    small model's fold (about 1 s against about 3.5 s for STSTNet on the composite). The trainer
    builds once, under ``keras.utils.set_random_seed(cfg.seed)``, and keeps the initial weights
    and optimizer state; each fit restores them (weights, Batch Normalization statistics, Adam's
    step counter and moments) and reseeds, so fold after fold starts from exactly the state a
    freshly built model would have, and Keras reuses the traced ``train_function`` and
    ``predict_function``. Under mixed precision (a loss-scale optimizer with its own state) it
    builds a fresh model for every fit instead.

    Args:
        input_shape: (H, W, C) or (T, H, W, C) of one sample. num_classes: softmax width K >= 2.
        cfg: the training config (model, seed, learning rate, transfer, precision).
        strategy: a ``tf.distribute`` strategy (default: the current one).
        classes: the K class names, for the emotion -> AU prior of AU heads
            (:func:`mer_keras.train.targets.build_targets`); ``None``: uncoded clips are masked.
    Raises:
        ModelFileError, OptionError: ``cfg.init_from`` unreadable or not matching.
    """

    def __init__(self, input_shape, num_classes: int, cfg: TrainConfig, strategy: tf.distribute.Strategy | None = None,
                 classes: Sequence[str] | None = None):
        self.input_shape, self.num_classes, self.cfg = tuple(input_shape), int(num_classes), cfg
        self.classes = tuple(classes) if classes is not None else None
        self.strategy = strategy or tf.distribute.get_strategy()
        self.reusable = not cfg.mixed_precision
        self.model = None
        self._fits = 0

    def _build(self) -> None:
        cfg = self.cfg
        set_determinism(cfg.deterministic)
        keras.utils.set_random_seed(cfg.seed)
        with phase("build"), self.strategy.scope(), precision_policy(cfg.mixed_precision):
            model = create_model(cfg.model, self.num_classes, input_shape=self.input_shape, **cfg.model_options)
            if cfg.init_from:
                initialise_from(model, cfg.init_from, cfg.freeze_until)
            compile_model(model, cfg)
            self._distributions = False
            if self.reusable:
                model.optimizer.build(model.trainable_variables)
                self._weights, self._optimizer = model.get_weights(), OptimizerState(model.optimizer)
        self.model = model

    def reset(self) -> keras.Model:
        """The model at its seeded initial state (built on first use), the global seeds reset."""
        if self.model is None or not self.reusable:
            self._build()
        elif self._fits:
            with phase("reset"):
                keras.utils.set_random_seed(self.cfg.seed)
                self.model.set_weights(self._weights)
                self._optimizer.restore()
        return self.model

    def fit(self, x: np.ndarray, y: np.ndarray, callbacks: Sequence = (), aus: Sequence[Sequence[str]] | None = None,
            backup_dir: str | Path | None = None, label: str = "the fit") -> keras.Model:
        """Train the model from its initial state on (x, y) for ``cfg.epochs`` epochs (see :func:`fit_model`).

        :meth:`fit_program` on all of x, raising where it reports a diverged fold.

        Args:
            label: what is trained, for the error of a diverged fit (``fold sub01``).
        Returns:
            The fitted model: the trainer's own, changed by the next ``fit`` (copy its weights or
            predict before then).
        Raises:
            DataError: an input holds NaN or infinite values (``label`` and the sample named), before
                any training.
            OptionError: the training loss or the weights became NaN or infinite (``label``, the
                epoch and the learning rate named): the fit stops at that epoch.
        """
        from mer_keras.errors import OptionError

        (result,) = self.fit_program(x, y, [np.arange(len(x))], callbacks, backup_dir, [label], aus=aus)
        if result.diverged:
            raise OptionError(result.diverged)
        return self.model

    def _compile_for_distributions(self, model) -> None:
        """Compile ``model`` (once) for target distributions: categorical cross-entropy (label-smoothed
        as ``cfg.label_smoothing``), its optimizer state kept as the trainer's reset restores it."""
        if self._distributions:
            return
        model.compile(optimizer=model.optimizer, loss=keras.losses.CategoricalCrossentropy(
            label_smoothing=self.cfg.label_smoothing), metrics=["accuracy"])
        self._distributions = True

    def fit_program(self, x: np.ndarray, y: np.ndarray, train_indices, callbacks: Sequence = (),
                    backup_dir: str | Path | None = None, labels: Sequence[str] | None = None, holdouts=None,
                    checkpoints: Sequence[int] | None = None, aus: Sequence[Sequence[str]] | None = None,
                    soft_targets=None) -> list:
        """Train one fold, on ``x[train_indices[0]]``: the one-fold program, with the skeleton and the
        results of :meth:`mer_keras.train.vectorized.trainer.VectorizedTrainer.fit_program`.

        The fold's figures are logged also as ``fold0_<name>`` (:class:`~mer_keras.train.program.PlainFoldLogs`);
        a NaN or infinite training loss ends the fit at that epoch, reported in the result, not raised.

        Args:
            x, y: (N, ...) inputs and (N,) int labels. train_indices: one index array (the fold's
                training samples). callbacks: the caller's Keras callbacks. backup_dir: the fit's
                backup folder, or None. labels: [the fold's name in messages].
            holdouts, checkpoints: [(n, ...) held-out inputs] predicted after each epoch count of
                ``checkpoints`` (nested selection). aus: per sample of x its AUs (AU heads), or None.
            soft_targets: [(n, C) float32 target distributions of the fold's training samples]
                (distillation, :mod:`mer_keras.train.distill`; single-output models), or None. The
                class weights then enter as per-sample weights of the samples' labels.
        Returns:
            [:class:`~mer_keras.train.program.FoldFit`] (its ``model()`` is the trainer's own model).
        Raises:
            DataError: an input holds NaN or infinite values, before any training.
            RunFolderError: an unreadable backup.
        """
        from mer_keras.data.checks import check_finite_inputs
        from mer_keras.train.callbacks import CheckpointPredictions, EpochSeeds
        from mer_keras.train.program import FoldDivergence, PlainFoldLogs, fold_outcomes, program_callbacks
        from mer_keras.train.targets import build_targets

        if len(train_indices) != 1:
            raise ValueError(f"a FoldTrainer trains one fold per program, not {len(train_indices)}")
        cfg = self.cfg
        labels = list(labels) if labels is not None else ["the fit"]
        train = np.asarray(train_indices[0])
        whole = len(train) == len(x) and (train == np.arange(len(x))).all()  # no copy of x for a fit on all of it
        xf, yf = (x, y) if whole else (x[train], y[train])
        aus = [aus[i] for i in train] if aus is not None and not whole else aus
        check_finite_inputs(xf, labels[0])  # a NaN input is the data's fault, not the learning rate's
        spec = cfg.spec
        model = self.reset()
        self._fits += 1
        cw = balanced_class_weight(yf, self.num_classes) if cfg.class_weight else None
        start = backup_epoch(backup_dir) if backup_dir else 0
        clock = EpochClock(len(xf))
        divergence = FoldDivergence(labels, cfg.epochs)
        keep = CheckpointPredictions([holdouts[0]], checkpoints) if checkpoints else None
        fit_callbacks = program_callbacks(divergence, clock, backup_dir, cfg.backup_minutes, first=[PlainFoldLogs()],
                                          extra=[EpochSeeds(cfg.seed), *([keep] if keep else []), *callbacks])
        if soft_targets is not None or cfg.mixup or cfg.cutmix:
            if spec.aux_losses:
                from mer_keras.errors import OptionError

                raise OptionError(f"{cfg.model}: mixup, cut-mix and distillation targets are for single-output models")
            self._compile_for_distributions(model)
            targets = np.asarray(soft_targets[0], np.float32) if soft_targets is not None else \
                np.eye(self.num_classes, dtype=np.float32)[yf]
            weights = np.array([cw[int(c)] for c in yf], np.float32) if cw else None  # by label, not by target
            cw = None
        elif spec.aux_losses:  # class weights enter the per-output sample weights
            targets, weights = build_targets(yf, aus, self.num_classes, spec.aux_losses, cw, classes=self.classes)
            cw = None
        else:
            targets, weights = yf, None
        with phase("dataset"):
            ds, steps = training_dataset(xf, targets, cfg.batch_size, cfg.epochs, cfg.seed, cfg.augment, cfg.flow_input,
                                         sample_weight=weights, start_epoch=start, shift=cfg.shift, mixup=cfg.mixup,
                                         cutmix=cfg.cutmix, balanced_labels=yf if cfg.sampling == "balanced" else None)
        history = model.fit(ds, epochs=cfg.epochs, steps_per_epoch=steps, verbose=0, class_weight=cw,
                            callbacks=fit_callbacks)
        clock.close()
        remove_fit_backup(backup_dir, self.strategy)
        return fold_outcomes(labels, divergence, history.history, lambda _: model.get_weights(), lambda _: model,
                             learning_rate(cfg), keep.probabilities if keep else None)


def fit_model(x: np.ndarray, y: np.ndarray, num_classes: int, cfg: TrainConfig,
              strategy: tf.distribute.Strategy | None = None, callbacks: Sequence = (),
              aus: Sequence[Sequence[str]] | None = None, backup_dir: str | Path | None = None,
              classes: Sequence[str] | None = None, label: str = "the final model") -> keras.Model:
    """Build, compile and fit one model on (x, y) for ``cfg.epochs`` epochs.

    Single-output models train with sparse cross-entropy (and Keras class weights). Models with
    auxiliary heads (registry ``aux_losses``) train all outputs in the same ``fit``: targets,
    weights and masks come from :func:`mer_keras.train.targets.build_targets`.

    Each epoch's batches, flips and dropout masks depend only on (``cfg.seed``, epoch) (see
    :func:`~mer_keras.train.tfdata.training_dataset`, :class:`~mer_keras.train.callbacks.EpochSeeds`), so with
    ``backup_dir`` a killed fit continues from its last backed-up epoch (Keras ``BackupAndRestore``:
    weights, optimizer state, epoch; every ``cfg.backup_minutes``) and ends with the weights of an
    uninterrupted fit. Several fits of one job share one :class:`FoldTrainer` instead.

    Args:
        x: (N, ...) inputs; y: (N,) int labels; aus: per sample its AUs (for AU heads), or None.
        backup_dir: folder for the per-epoch backup (removed when the fit ends), or None.
        classes: the K class names (the emotion -> AU prior of AU heads; see :class:`FoldTrainer`).
        label: what is trained, for the error of a diverged fit (the job's one caller fits the final model).
    Returns:
        The fitted ``keras.Model`` (its ``predictions`` output gives the softmax; float32 outputs
        also under ``cfg.mixed_precision``).
    Raises:
        RunFolderError: an unreadable backup in ``backup_dir``. OptionError: the loss or the
            weights became NaN or infinite (``label`` and the epoch named).
    """
    return FoldTrainer(x.shape[1:], num_classes, cfg, strategy, classes).fit(x, y, callbacks, aus, backup_dir, label)


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



