"""The training library's configuration: one dataclass, TF-free (importing it loads no TensorFlow).

Its defaults are the project's training defaults; ``mer-keras train``'s options
(:class:`mer_keras.jobs.train_options.TrainOptions`) take theirs from here, so each is written once.
The learning rate's default is the model's (the registry's).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from mer_keras.data.synthetic.config import MAX_SEED

if TYPE_CHECKING:
    from mer_keras.registry import ModelSpec

#: Upper bounds of the training numbers (the options' and a search space's too): beyond them a value
#: is a typo that would train for months or not fit in memory. The papers' recipes stay far inside
#: (HTNet: 800 epochs, batch 256; micro-attention: shift 8).
MAX_EPOCHS = 100_000
MAX_BATCH_SIZE = 65_536
MAX_SHIFT = 64
MAX_PARALLEL_FOLDS = 256
#: How the N samples of an epoch are chosen: each once in a random order, or class by class
#: (:func:`mer_keras.train.tfdata.balanced_order`).
SAMPLINGS = ("shuffle", "balanced")


@dataclass
class TrainConfig:
    """Training hyper-parameters (one config for every fold and the final model).

    Attributes:
        model: registry name. epochs: fixed epoch count (no early stopping on test data).
        batch_size: global batch size (split over replicas). lr: Adam learning rate; ``None``: the
        model's registered rate (:attr:`mer_keras.registry.ModelSpec.learning_rate`).
        seed: random seed (weights, shuffling, augmentation). augment: random horizontal flips
        (the u channel of a flow input is negated with the flip). shift: random translations of
        up to this many pixels, edges repeated (0: none). class_weight: balanced class
        weights from the training labels. model_options: keyword options of the builder.
        flow_input: True when the input is a (u, v, strain) flow image.
        aux_weights: loss weights of auxiliary outputs, overriding the registry's defaults
            (e.g. ``{"proposal": 0.1}``); see :mod:`mer_keras.train.targets`.
        init_from: a ``.keras`` file or run folder whose weights initialise the model, layer by
            layer where names and shapes match (transfer learning).
        freeze_until: with ``init_from``, freeze every layer up to and including this one.
        deterministic: op determinism and seeded dropout
            (:func:`~mer_keras.train.determinism.set_determinism`): the same seed gives the same
            weights and metrics on the same machine.
        mixed_precision: build under ``mixed_float16`` (GPU speed-up; outputs stay float32).
        backup_minutes: least time between two backups of a fit given a ``backup_dir`` (0: every epoch).
        parallel_folds: folds trained at once (small models; see
            :func:`mer_keras.train.multifold.choose_parallel_folds`); 0: chosen from the model's
            FLOPs and the cores; 1: one fold at a time.
        weight_decay: decoupled weight decay (AdamW, Loshchilov & Hutter, ICLR 2019), applied by
            Keras' Adam as ``w -= lr * weight_decay * w`` to every trainable weight each step;
            0: none. Typical values 1e-4 to 0.1.
        ema: momentum of an exponential moving average of the weights (Keras' Adam
            ``use_ema``: ``a = ema * a + (1 - ema) * w`` after every step, ``a`` starting at the
            initial weights); the fitted model holds the average, so no epoch is picked. 0: off;
            else in (0, 1), e.g. 0.99 (an average over about the last 100 steps).
        label_smoothing: the class targets of the loss are ``(1 - s) * one_hot + s / K`` (Szegedy
            et al., CVPR 2016, Sec. 7); 0: none; in [0, 1).
        mixup: each training sample mixed with another of its batch, inputs and targets alike, by a
            weight uniform in [0, 1) (Zhang et al., ICLR 2018, alpha = 1;
            :func:`mer_keras.train.tfdata.training_dataset`). Flow images mix as superposed motion.
        cutmix: each training sample takes a box of another sample of its batch (Yun et al., ICCV
            2019, alpha = 1), its targets mixed by the area kept; not with ``mixup``.
        sampling: ``shuffle`` (each training sample once per epoch) or ``balanced`` (each epoch's N
            samples drawn class by class with replacement,
            :func:`mer_keras.train.tfdata.balanced_order`; needs ``class_weight`` off).
    """

    model: str = "learnet"
    epochs: int = 80
    batch_size: int = 32
    lr: float | None = None
    seed: int = 0
    augment: bool = True
    shift: int = 0
    class_weight: bool = True
    model_options: dict = field(default_factory=dict)
    flow_input: bool = False
    aux_weights: dict = field(default_factory=dict)
    init_from: str | None = None
    freeze_until: str | None = None
    deterministic: bool = True
    mixed_precision: bool = False
    backup_minutes: float = 1.0
    parallel_folds: int = 0
    weight_decay: float = 0.0
    ema: float = 0.0
    label_smoothing: float = 0.0
    mixup: bool = False
    cutmix: bool = False
    sampling: str = "shuffle"

    def __post_init__(self) -> None:
        """Refuse numbers training cannot use, named as on the command line, before anything is built
        (a batch size of 0 would divide by zero; a NaN rate would train a model of NaN weights).

        Raises:
            OptionError: the first bad value.
        """
        import math
        import sys

        from mer_keras.errors import OptionError

        def whole(name: str, lo: int, hi: int) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise OptionError(f"--{name.replace('_', '-')} {value!r}: expected a whole number from {lo} to {hi}")

        whole("epochs", 1, MAX_EPOCHS)
        whole("batch_size", 1, MAX_BATCH_SIZE)
        whole("seed", 0, MAX_SEED)
        whole("shift", 0, MAX_SHIFT)
        whole("parallel_folds", 0, MAX_PARALLEL_FOLDS)
        for name, above in (("lr", True), ("backup_minutes", False), ("weight_decay", False), ("ema", False)):
            value = getattr(self, name)
            if value is None and name == "lr":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or abs(value) > sys.float_info.max or \
                    not math.isfinite(value) or (value <= 0 if above else value < 0):
                raise OptionError(f"--{name.replace('_', '-')} {value!r}: expected a finite number "
                                  f"{'above 0' if above else 'of at least 0'}")
        if self.label_smoothing >= 1:
            raise OptionError(f"--label-smoothing {self.label_smoothing!r}: expected a number from 0 to below 1")
        if self.ema >= 1:
            raise OptionError(f"--ema {self.ema!r}: expected 0 (off) or a momentum below 1, e.g. 0.99")
        if self.mixup and self.cutmix:
            raise OptionError("--mixup and --cutmix: choose one (each training sample is mixed with one partner)")
        if self.sampling not in SAMPLINGS:
            raise OptionError(f"--sampling {self.sampling!r}: expected one of {', '.join(SAMPLINGS)}")
        if self.sampling == "balanced" and self.class_weight:
            raise OptionError("--sampling balanced balances the batches; class weights would balance them twice: "
                              "add --no-class-weight")

    @property
    def spec(self) -> ModelSpec:
        """The model's registry row (a lookup in the registry's table), which every step reads from
        the config instead of looking the name up itself.

        Raises:
            UnknownNameError: ``model`` is not registered (the message lists the registered ones).
        """
        from mer_keras.factory import get_spec

        return get_spec(self.model)

    def to_dict(self) -> dict:
        return asdict(self)
