"""The LOSO engine's trainer: programs of folds trained in one Keras ``fit``, each fold's model extracted.

:class:`VectorizedTrainer` has the ``fit_program`` of :class:`mer_keras.train.fit.FoldTrainer` (the
skeleton of :mod:`mer_keras.train.program`: per-fold logs, divergence check, backup, outcomes) and
runs it on a :class:`~mer_keras.train.vectorized.model.FoldedModel` of G groups of K folds
(:func:`program_groups`), fed by :func:`~mer_keras.train.vectorized.dataset.folded_dataset`.
"""

from __future__ import annotations

from mer_keras._keras import keras
from mer_keras.train.vectorized.dataset import folded_dataset
from mer_keras.train.vectorized.model import FoldedModel, FoldLogs
from mer_keras.train.vectorized.support import unsupported_layers

#: Folds per group of a program: one grouped convolution holds this many folds. 8 kept the
#: activations in cache and ran fastest in the prototype (STSTNet, 2 cores: 12.6-13.5 ms per
#: fold-epoch with 8 per group, 18.2-18.7 with all 69 in one; docs/BENCHMARKS.md).
FOLDS_PER_GROUP = 8


def program_groups(n: int, per_group: int = FOLDS_PER_GROUP) -> list[int]:
    """Folds per group of a program of ``n`` folds: groups of at most ``per_group``, as even as
    possible (``20`` -> ``[7, 7, 6]``)."""
    groups = -(-n // per_group)
    base, extra = divmod(n, groups)
    return [base + (i < extra) for i in range(groups)]


class _Reseed(keras.callbacks.Callback):
    """Each epoch, every fold's dropout generators reset as the fold alone resets them."""

    def __init__(self, program: FoldedModel):
        super().__init__()
        self.program = program

    def on_epoch_begin(self, epoch, logs=None):
        self.program.reseed(epoch)


class _HoldoutPredictions(keras.callbacks.Callback):
    """At chosen epochs, each fold's held-out samples predicted with the fold's weights then."""

    def __init__(self, program: FoldedModel, plain: keras.Model, holdouts, epochs):
        super().__init__()
        self.program, self.plain, self.holdouts, self.epochs = program, plain, list(holdouts), {int(e) for e in epochs}
        self.probabilities = [{} for _ in self.holdouts]

    def on_epoch_end(self, epoch, logs=None):
        from mer_keras.models.inference import predict_proba
        from mer_keras.train.callbacks import averaged_weights

        if epoch + 1 not in self.epochs:
            return
        with averaged_weights(self.program):  # what the fit would end with at this epoch
            for i, x in enumerate(self.holdouts):
                self.plain.set_weights(self.program.fold_weights(i))
                self.probabilities[i][epoch + 1] = predict_proba(self.plain, x)


class VectorizedTrainer:
    """Trains programs of folds: G groups of K folds each in one Keras ``fit`` (:class:`FoldedModel`).

    The registry model is built once, seeded as :class:`mer_keras.train.fit.FoldTrainer` builds it
    (``keras.utils.set_random_seed(cfg.seed)``, the builder, ``--init-from``), and every fold of
    every program starts from its weights with a fresh Adam state.

    Args:
        input_shape: one sample's shape. num_classes: softmax width. cfg: the training config.
    Raises:
        ValueError: the model has layers the program cannot translate (:func:`unsupported_layers`).
    """

    def __init__(self, input_shape, num_classes: int, cfg):
        from mer_keras.factory import create_model
        from mer_keras.train.determinism import set_determinism
        from mer_keras.train.timing import phase

        self.cfg, self.num_classes, self.input_shape = cfg, int(num_classes), tuple(input_shape)
        self.aux = cfg.spec.aux_losses
        set_determinism(cfg.deterministic)
        with phase("build"):
            keras.utils.set_random_seed(cfg.seed)
            self.template = create_model(cfg.model, num_classes, input_shape=self.input_shape, **cfg.model_options)
            if cfg.init_from:
                from mer_keras.train.transfer import initialise_from

                initialise_from(self.template, cfg.init_from, cfg.freeze_until)
            self.initial = self.template.get_weights()
            self.plain = create_model(cfg.model, num_classes, input_shape=self.input_shape, **cfg.model_options)
        bad = unsupported_layers(self.template)
        if bad:
            raise ValueError(f"{cfg.model}: layers the folded program cannot translate: {', '.join(bad)}")

    def fold_model(self, weights) -> keras.Model:
        """The ordinary registry model (one reused instance) holding ``weights``."""
        self.plain.set_weights(weights)
        return self.plain

    def fit_program(self, x, y, train_indices, callbacks=(), backup_dir=None, labels=None, holdouts=None,
                    checkpoints=None, aus=None, ks=None, soft_targets=None):
        """Train fold ``i`` on ``x[train_indices[i]]`` for ``cfg.epochs`` epochs, all folds in one program.

        Args:
            x, y: (N, ...) float32 inputs in [0, 255] and (N,) int labels of every sample.
            train_indices: per fold, its training samples (indices into x), every fold giving the
                same steps per epoch.
            callbacks: extra Keras callbacks (progress, per-fold history with prefixes ``fold<i>_``).
            backup_dir: the program's training backup (Keras ``BackupAndRestore``), or None.
            labels: per fold its name in messages (``fold sub01``).
            holdouts, checkpoints: per fold (n_i, ...) held-out inputs predicted after each epoch
                count of ``checkpoints`` (nested selection).
            aus: unused (AU heads are not translated; the signature is every trainer's).
            ks: folds per group (sum = number of folds); default
                :func:`program_groups`.
            soft_targets: per fold, (n_j, C) float32 target distributions of its training samples
                (distillation, :mod:`mer_keras.train.distill`), or None (the labels).
        Returns:
            Per fold a :class:`~mer_keras.train.program.FoldFit` (weights in the template's order).
        Raises:
            DataError: an input holds NaN or infinite values (before any training).
            RunFolderError: an unreadable backup.
        """
        from mer_keras.data.checks import check_finite_inputs
        from mer_keras.train.fit import backup_epoch, learning_rate, make_optimizer, remove_fit_backup
        from mer_keras.train.program import FoldDivergence, fold_outcomes, program_callbacks
        from mer_keras.train.timing import EpochClock, phase

        cfg = self.cfg
        ks = list(ks) if ks is not None else program_groups(len(train_indices))
        labels = list(labels) if labels is not None else [f"fold {i}" for i in range(len(train_indices))]
        for label, train in zip(labels, train_indices):
            check_finite_inputs(x[train], label)
        keras.utils.set_random_seed(cfg.seed)
        self.template.set_weights(self.initial)
        with phase("build"):
            program = FoldedModel(self.template, ks, cfg, aux=self.aux, x=x)
            program.compile(optimizer=make_optimizer(cfg))
        start = backup_epoch(backup_dir) if backup_dir else 0
        with phase("dataset"):
            ds, steps = folded_dataset(train_indices, y, cfg, self.num_classes, ks, start_epoch=start,
                                       soft_targets=soft_targets, image_size=(x.shape[-3], x.shape[-2]))
        clock = EpochClock(sum(len(t) for t in train_indices))
        divergence = FoldDivergence(labels, cfg.epochs, stop_folds=program.stop_folds)
        keep = _HoldoutPredictions(program, self.plain, holdouts, checkpoints) if checkpoints else None
        fit_callbacks = program_callbacks(divergence, clock, backup_dir, cfg.backup_minutes, first=[FoldLogs()],
                                          extra=[_Reseed(program), *([keep] if keep else []), *callbacks])
        keras.utils.set_random_seed(cfg.seed)
        history = program.fit(ds, epochs=cfg.epochs, steps_per_epoch=steps, verbose=0, callbacks=fit_callbacks)
        clock.close()
        remove_fit_backup(backup_dir, program.distribute_strategy)
        return fold_outcomes(labels, divergence, history.history, program.fold_weights, self.fold_model,
                             learning_rate(cfg), keep.probabilities if keep else None)
