"""Training several folds at once: one Keras model holding K independent copies of a small network.

A fold of STSTNet on 28 x 28 flow images (0.7 MFLOPs per sample) is a few thousand small steps
whose kernels leave part of two cores idle. :class:`MultiFoldTrainer` trains K folds in
one ``fit``: copy ``j`` of the network has its own input, fed only fold ``j``'s training batches
(its own order, flips and class weights), its own output and loss, and its own dropout seeds. The
loss is the sum of the K losses, so copy ``j``'s gradient is exactly its own fold's gradient, and
Adam's update is per variable, so each copy follows the trajectory it would follow alone. Folds
are grouped by steps per epoch (a group's copies step together from first step to last).

Each copy's probabilities equal those of its fold trained alone (on CPU bit for bit; the tests,
tests/unit/test_multifold.py, allow 1e-5). Keras averages every output's loss over an epoch with
the batch sizes of the *first* output, so each copy reports its own training loss through
:class:`FoldLoss` (its batches' sizes), the figure the fold trained alone reports.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mer_keras._keras import keras, tf
from mer_keras.data.weights import balanced_class_weight
from mer_keras.train.config import TrainConfig
from mer_keras.train.fit import OptimizerState, backup_epoch, learning_rate, remove_fit_backup
from mer_keras.train.tfdata import training_dataset
from mer_keras.train.timing import EpochClock, phase

#: Largest K chosen automatically: beyond it the traced graph grows and the gain flattens (STSTNet
#: on the composite, 2 cores: 1.35x the samples/s of one fold at K = 4, 1.40x at K = 8).
MAX_AUTO_FOLDS = 8
#: Per-sample forward FLOPs under which folds train at once: STSTNet (0.7 M) gains, OFF-ApexNet
#: (7.7 M) and LEARNet (44 M) do not (0.8x and 1.05x at K = 4 and 2; docs/BENCHMARKS.md).
SMALL_MODEL_FLOPS = 2e6


def supports_parallel_folds(cfg: TrainConfig, strategy=None) -> str | None:
    """Why K folds cannot train at once under ``cfg`` (a sentence), or None when they can.

    Multi-fold training needs a single-output model (no auxiliary heads), no transfer
    initialisation, float32, and the default (one-device) strategy.
    """
    from mer_keras.registry import get_spec

    strategy = strategy or tf.distribute.get_strategy()
    if get_spec(cfg.model).aux_losses:
        return f"{cfg.model} has auxiliary outputs"
    if cfg.init_from:
        return "--init-from initialises the model from another"
    if cfg.mixed_precision:
        return "mixed precision keeps a loss-scale state"
    if strategy.num_replicas_in_sync > 1 or type(strategy).__name__ != "_DefaultDistributionStrategy":
        return "a distribution strategy splits the batch over replicas"
    return None


def forward_flops(model_name: str, input_shape, num_classes: int, model_options: dict | None = None) -> float:
    """Forward-pass FLOPs of one sample (multiply-adds count 2), from TensorFlow's graph profiler.

    Args:
        model_name: registry name. input_shape: (H, W, C) or (T, H, W, C).
    Returns:
        FLOPs per sample (float > 0); STSTNet on 28 x 28 x 3 is about 0.2 M (convolutions,
        pooling, dense layer; the rescaling included).
    """
    from mer_keras.registry import create_model

    graph = tf.Graph()
    with graph.as_default():
        tf.random.set_seed(0)  # this graph's initialisers (op determinism wants a seed; values unused)
        model = create_model(model_name, num_classes, input_shape=tuple(input_shape), **(model_options or {}))
        concrete = tf.function(lambda t: model(t, training=False)).get_concrete_function(
            tf.TensorSpec((1, *input_shape), tf.float32))
        opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
        opts["output"] = "none"
        flops = tf.compat.v1.profiler.profile(graph=concrete.graph, options=opts).total_float_ops
    return float(max(flops, 1))


def choose_parallel_folds(cfg: TrainConfig, input_shape, num_classes: int, n_folds: int, requested: int = 0,
                          strategy=None, cores: int | None = None) -> int:
    """How many folds to train at once.

    ``requested`` > 0 is taken as it is (capped at ``n_folds``). 0 (auto): 1 where multi-fold
    training does not apply (:func:`supports_parallel_folds`) or the model's forward pass costs
    ``SMALL_MODEL_FLOPS`` or more per sample (its own step keeps the cores busy); else
    ``min(n_folds, MAX_AUTO_FOLDS, 4 * cores)``. The thresholds come from
    ``tools/bench_loso.py --parallel-folds`` on 2 cores (docs/BENCHMARKS.md).

    Raises:
        OptionError: ``requested`` > 1 where multi-fold training does not apply (the reason named).
    """
    from mer_keras.errors import OptionError

    why_not = supports_parallel_folds(cfg, strategy)
    if requested > 1:
        if why_not:
            raise OptionError(f"--parallel-folds {requested}: not available because {why_not}; use 1 or 0 (auto)")
        return max(1, min(requested, n_folds))
    if requested == 1 or why_not or n_folds < 2:
        return 1
    if forward_flops(cfg.model, input_shape, num_classes, cfg.model_options) >= SMALL_MODEL_FLOPS:
        return 1
    if not cores:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(n_folds, MAX_AUTO_FOLDS, 4 * cores))


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """ceil(n_train / batch_size): folds train together only when this is equal."""
    return -(-int(n_train) // int(batch_size))


def group_folds(folds: Sequence, batch_size: int, k: int) -> list[list]:
    """Split folds into groups of at most ``k`` with equal steps per epoch, in the given order
    within each steps value (groups of one fold when ``k`` is 1)."""
    if k <= 1:
        return [[f] for f in folds]
    by_steps: dict[int, list] = {}
    for fold in folds:
        by_steps.setdefault(steps_per_epoch(len(fold.train), batch_size), []).append(fold)
    groups = []
    for same in by_steps.values():
        groups += [same[i:i + k] for i in range(0, len(same), k)]
    return groups


def group_name(folds: Sequence) -> str:
    """A stable folder name for the training backup (and TensorBoard logs) of folds trained in one
    fit: the fold's own name for one fold, else a hash of the names (the same folds give the same name)."""
    from mer_keras.data.protocols import fold_stem

    if len(folds) == 1:
        return fold_stem(folds[0].name)
    names = "\n".join(f.name for f in folds)
    return f"group-{len(folds)}-{hashlib.sha256(names.encode()).hexdigest()[:12]}"


def multifold_dataset(xs: Sequence[np.ndarray], ys: Sequence[np.ndarray], cfg: TrainConfig, num_classes: int,
                      start_epoch: int = 0):
    """The training batches of K folds side by side: step ``s`` holds batch ``s`` of every fold.

    Fold ``j``'s stream is its own :func:`~mer_keras.train.tfdata.training_dataset` (the batches,
    order and flips it has when trained alone), with its own balanced class weights as sample
    weights (what Keras' ``class_weight`` gives a fold alone).

    Args:
        xs, ys: K training sets, (N_j, ...) float32 in [0, 255] and (N_j,) int labels.
    Returns:
        (dataset of (tuple of K input batches, {"fold<j>": labels}[, {"fold<j>": weights}]),
        steps per epoch); the weights are there when ``cfg.class_weight``.
    Raises:
        ValueError: the sets give different steps per epoch.
    """
    steps = {steps_per_epoch(len(x), cfg.batch_size) for x in xs}
    if len(steps) != 1:
        raise ValueError(f"training sets of {[len(x) for x in xs]} samples give steps per epoch {sorted(steps)}: "
                         "folds trained together need equal steps")
    parts = []
    for x, y in zip(xs, ys):
        w = None
        if cfg.class_weight:
            cw = balanced_class_weight(y, num_classes)
            w = np.array([cw[int(c)] for c in y], np.float32)
        ds, n_steps = training_dataset(x, y, cfg.batch_size, cfg.epochs, cfg.seed, cfg.augment, cfg.flow_input,
                                       sample_weight=w, start_epoch=start_epoch, shift=cfg.shift)
        parts.append(ds)
    names = [f"fold{j}" for j in range(len(xs))]

    def regroup(*batches):
        inputs = tuple(b[0] for b in batches)
        labels = {n: b[1] for n, b in zip(names, batches)}
        if cfg.class_weight:
            return inputs, labels, {n: b[2] for n, b in zip(names, batches)}
        return inputs, labels

    return tf.data.Dataset.zip(tuple(parts)).map(regroup).prefetch(tf.data.AUTOTUNE), n_steps


class FoldLoss(keras.metrics.Mean):
    """A copy's training loss averaged over the epoch as Keras averages a single model's ``loss``.

    Per step: ``sum(w_i * CE_i) / n`` (sparse categorical cross-entropy, sample weights ``w``, batch
    size ``n``), then the mean over steps weighted by ``n``. Pass it as a weighted metric of the
    copy's output, so it receives the class weights.
    """

    def __init__(self, name: str = "train_loss", **kwargs):
        super().__init__(name=name, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        per_sample = keras.losses.sparse_categorical_crossentropy(y_true, y_pred)
        if sample_weight is not None:
            per_sample = per_sample * tf.cast(tf.reshape(sample_weight, tf.shape(per_sample)), per_sample.dtype)
        n = tf.shape(per_sample)[0]
        step_loss = tf.math.divide_no_nan(tf.reduce_sum(per_sample), tf.cast(n, per_sample.dtype))
        return super().update_state(step_loss, sample_weight=tf.cast(n, per_sample.dtype))


class MultiFoldTrainer:
    """K copies of one network in one Keras model, each trained on its own fold.

    The copies start from the weights of the model :class:`~mer_keras.train.fit.FoldTrainer` would
    build (``keras.utils.set_random_seed(cfg.seed)``, then the builder), and each fit restores
    them and a fresh Adam state, so one build and one trace serve every group of the job.

    Args:
        input_shape: (H, W, C) of one sample. num_classes: K classes >= 2. cfg: training config.
        k: copies (folds per step), >= 2.
    """

    def __init__(self, input_shape, num_classes: int, cfg: TrainConfig, k: int):
        from mer_keras.registry import create_model
        from mer_keras.train.determinism import set_determinism

        self.cfg, self.k, self.num_classes = cfg, int(k), int(num_classes)
        set_determinism(cfg.deterministic)
        with phase("build"):
            keras.utils.set_random_seed(cfg.seed)
            template = create_model(cfg.model, num_classes, input_shape=tuple(input_shape), **cfg.model_options)
            self._weights = template.get_weights()
            self.copies, inputs, outputs = [], [], {}
            for j in range(self.k):
                copy = create_model(cfg.model, num_classes, input_shape=tuple(input_shape), **cfg.model_options)
                copy._name = f"fold{j}"
                inp = keras.Input(shape=tuple(input_shape), name=f"fold{j}_input")
                outputs[f"fold{j}"] = copy(inp)
                self.copies.append(copy)
                inputs.append(inp)
            self.model = keras.Model(inputs, outputs, name=f"{cfg.model}_x{self.k}")
            self.model.compile(optimizer=keras.optimizers.Adam(learning_rate(cfg)),
                               loss={f"fold{j}": "sparse_categorical_crossentropy" for j in range(self.k)},
                               metrics={f"fold{j}": ["accuracy"] for j in range(self.k)},
                               weighted_metrics={f"fold{j}": [FoldLoss()] for j in range(self.k)})
            self.model.optimizer.build(self.model.trainable_variables)
            self._optimizer = OptimizerState(self.model.optimizer)

    def _reset(self) -> None:
        with phase("reset"):
            keras.utils.set_random_seed(self.cfg.seed)
            for copy in self.copies:
                copy.set_weights(self._weights)
            self._optimizer.restore()

    def fit(self, xs: Sequence[np.ndarray], ys: Sequence[np.ndarray], callbacks: Sequence = (),
            backup_dir: str | Path | None = None,
            labels: Sequence[str] | None = None) -> list[tuple[float | None, float | None]]:
        """Train copy ``j`` on (xs[j], ys[j]) for ``cfg.epochs`` epochs, all copies in the same steps.

        Args:
            xs, ys: K training sets, (N_j, H, W, C) float32 and (N_j,) int; every N_j must give the
                same steps per epoch.
            backup_dir: the group's training backup (Keras ``BackupAndRestore``), or None.
            labels: per set, its name in the error of a diverged fit (``fold sub01``; default ``copy <j>``).
        Returns:
            Per set, (final training loss, final training accuracy) of its last epoch (None, None
            when no epoch ran in this process).
        Raises:
            ValueError: the sets differ in steps per epoch, or there are not K of them.
            RunFolderError: an unreadable backup in ``backup_dir``.
            DataError: a set's input holds NaN or infinite values (its label and the sample named),
                before any training.
            OptionError: a copy's training loss or weights became NaN or infinite (its label, the
                epoch and the learning rate named); the fit of every copy stops there.
        """
        from mer_keras.data.checks import check_finite_inputs
        from mer_keras.errors import OptionError
        from mer_keras.train.callbacks import (
            EpochSeeds,
            EpochTiming,
            PeriodicBackupAndRestore,
            StopOnNonFiniteLoss,
            divergence_message,
            finite_weights,
        )

        cfg = self.cfg
        steps = {steps_per_epoch(len(x), cfg.batch_size) for x in xs}
        if len(steps) != 1 or len(xs) != self.k or len(ys) != self.k:
            raise ValueError(f"{len(xs)} training sets with steps per epoch {sorted(steps)} for {self.k} copies: "
                             "need K sets with equal steps per epoch")
        labels = list(labels) if labels is not None else [f"copy {j}" for j in range(self.k)]
        for label, x in zip(labels, xs):  # a NaN input is the data's fault, not the learning rate's
            check_finite_inputs(x, label)
        self._reset()
        start = backup_epoch(backup_dir) if backup_dir else 0
        with phase("dataset"):
            ds, n_steps = multifold_dataset(xs, ys, cfg, self.num_classes, start_epoch=start)
        clock = EpochClock(sum(len(x) for x in xs))
        fit_callbacks = [EpochSeeds(cfg.seed, models=self.copies), EpochTiming(clock), *callbacks]
        if backup_dir:
            fit_callbacks.insert(0, PeriodicBackupAndRestore(str(backup_dir), 60.0 * cfg.backup_minutes))
        fit_callbacks.insert(0, StopOnNonFiniteLoss(labels, cfg.epochs, learning_rate(cfg),  # before any writer
                                                    [f"fold{j}_" for j in range(self.k)]))
        history = self.model.fit(ds, epochs=cfg.epochs, steps_per_epoch=n_steps, verbose=0, callbacks=fit_callbacks)
        clock.close()
        for label, copy in zip(labels, self.copies):
            if not finite_weights(copy):
                raise OptionError(divergence_message(label, "the weights became NaN or infinite", cfg.epochs,
                                                     cfg.epochs, learning_rate(cfg)))
        remove_fit_backup(backup_dir, self.model.distribute_strategy)
        out = []
        for j in range(self.k):
            loss, acc = history.history.get(f"fold{j}_train_loss"), history.history.get(f"fold{j}_accuracy")
            out.append((float(loss[-1]), float(acc[-1])) if loss else (None, None))
        return out
