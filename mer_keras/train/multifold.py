"""Which folds train together: programs of folds with equal steps per epoch, and how many.

The engine that trains them is :mod:`mer_keras.train.vectorized` (folds vectorised inside each
op). Here: whether a configuration can train folds together (:func:`supports_parallel_folds`),
how many folds one program holds (:func:`choose_parallel_folds`), and how folds split into
programs of equal steps per epoch (:func:`group_folds`; the groups within a program:
:func:`mer_keras.train.vectorized.trainer.program_groups`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence

import numpy as np

from mer_keras._keras import tf
from mer_keras.train.config import TrainConfig

#: Largest program chosen automatically (folds trained by one ``fit``).
MAX_AUTO_FOLDS = 72
#: Per-sample forward FLOPs under which folds train together by default: a bigger model's own
#: convolutions already keep the cores busy; LEARNet (43.7 MFLOPs at 112 x 112) trains alone. The
#: measurements behind the threshold: docs/BENCHMARKS.md, "The LOSO engine".
SMALL_MODEL_FLOPS = 20e6
#: Share of the machine's memory a program's activations may take (estimated, see :func:`activation_bytes`).
MEMORY_SHARE = 0.25


def supports_parallel_folds(cfg: TrainConfig, strategy=None, input_shape=None, num_classes: int = 3) -> str | None:
    """Why folds cannot train together under ``cfg`` (a sentence), or None when they can.

    Folds train together (:mod:`mer_keras.train.vectorized`) in float32, under the default
    (one-device) strategy, for a model whose layers the folded program translates, where
    TensorFlow computes grouped convolutions (on CPU: with oneDNN on).
    """
    from mer_keras.factory import create_model
    from mer_keras.train.vectorized.support import grouped_convolution_works, unsupported_layers

    strategy = strategy or tf.distribute.get_strategy()
    other = [out for out, (kind, _) in cfg.spec.aux_losses.items() if kind != "proposal"]
    if other:
        return f"{cfg.model}'s auxiliary outputs {', '.join(other)} are not translated by the folded program"
    if cfg.mixed_precision:
        return "mixed precision keeps a loss-scale state"
    if strategy.num_replicas_in_sync > 1 or type(strategy).__name__ != "_DefaultDistributionStrategy":
        return "a distribution strategy splits the batch over replicas"
    key = (cfg.model, tuple(input_shape or ()), int(num_classes), repr(sorted(cfg.model_options.items())))
    if key not in _LAYERS:
        graph = tf.Graph()
        with graph.as_default():
            tf.random.set_seed(0)
            model = create_model(cfg.model, num_classes, input_shape=tuple(input_shape) if input_shape else None,
                                 **cfg.model_options)
            _LAYERS[key] = unsupported_layers(model)
    if _LAYERS[key]:
        bad = _LAYERS[key]
        return f"{cfg.model} has layers the folded program does not translate ({', '.join(bad[:3])}" + \
            (f" and {len(bad) - 3} more)" if len(bad) > 3 else ")")
    if not grouped_convolution_works():
        return "this TensorFlow computes no grouped convolution here (on CPU it needs oneDNN: TF_ENABLE_ONEDNN_OPTS=1)"
    return None


_LAYERS: dict = {}


def activation_bytes(model_name: str, input_shape, num_classes: int, model_options: dict | None = None) -> int:
    """Bytes of every layer output of one sample's forward pass (float32), a proxy of what training
    keeps in memory per sample (the backward pass roughly doubles it)."""
    from mer_keras.factory import create_model

    graph = tf.Graph()
    with graph.as_default():
        tf.random.set_seed(0)
        model = create_model(model_name, num_classes, input_shape=tuple(input_shape), **(model_options or {}))
        total = 0
        for layer in model.layers:
            for shape in (layer.output_shape if isinstance(layer.output_shape, list) else [layer.output_shape]):
                if isinstance(shape, tuple):
                    total += int(np.prod([d for d in shape[1:] if d]))
    return 4 * total


def forward_flops(model_name: str, input_shape, num_classes: int, model_options: dict | None = None) -> float:
    """Forward-pass FLOPs of one sample (multiply-adds count 2), from TensorFlow's graph profiler.

    Args:
        model_name: registry name. input_shape: (H, W, C) or (T, H, W, C).
    Returns:
        FLOPs per sample (float > 0); STSTNet on 28 x 28 x 3 is about 0.2 M (convolutions,
        pooling, dense layer; the rescaling included).
    """
    from mer_keras.factory import create_model

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
                          strategy=None, memory: int | None = None) -> int:
    """How many folds one program trains at once.

    ``requested`` > 0 is taken as it is (capped at ``n_folds``). 0 (auto): 1 where folds cannot train
    together (:func:`supports_parallel_folds`) or the model's forward pass costs
    :data:`SMALL_MODEL_FLOPS` or more per sample; else as many as fit :data:`MEMORY_SHARE` of the
    memory (:func:`activation_bytes` x 3 x the batch size per fold), at most :data:`MAX_AUTO_FOLDS`.

    Raises:
        OptionError: ``requested`` > 1 where folds cannot train together (the reason named).
    """
    from mer_keras.errors import OptionError

    why_not = supports_parallel_folds(cfg, strategy, input_shape, num_classes) if (requested != 1 and n_folds > 1) \
        else None
    if requested > 1:
        if why_not:
            raise OptionError(f"--parallel-folds {requested}: not available because {why_not}; use 1 or 0 (auto)")
        return max(1, min(requested, n_folds))
    if requested == 1 or why_not or n_folds < 2:
        return 1
    if forward_flops(cfg.model, input_shape, num_classes, cfg.model_options) >= SMALL_MODEL_FLOPS:
        return 1
    if memory is None:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 8 << 30
    per_fold = 3 * cfg.batch_size * activation_bytes(cfg.model, input_shape, num_classes, cfg.model_options)
    fit = int(MEMORY_SHARE * memory // max(per_fold, 1))
    return max(1, min(n_folds, MAX_AUTO_FOLDS, fit))


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """ceil(n_train / batch_size): folds train together only when this is equal."""
    return -(-int(n_train) // int(batch_size))


def group_folds(folds: Sequence, batch_size: int, k: int) -> list[list]:
    """Split folds into programs of at most ``k`` with equal steps per epoch, in the given order
    within each steps value (programs of one fold when ``k`` is 1)."""
    if k <= 1:
        return [[f] for f in folds]
    by_steps: dict[int, list] = {}
    for fold in folds:
        by_steps.setdefault(steps_per_epoch(len(fold.train), batch_size), []).append(fold)
    groups = []
    for same in by_steps.values():
        n = -(-len(same) // k)  # as many programs as needed, of sizes as even as possible
        size = -(-len(same) // n)
        groups += [same[i:i + size] for i in range(0, len(same), size)]
    return groups


def group_name(folds: Sequence) -> str:
    """A stable folder name for the training backup (and TensorBoard logs) of folds trained in one
    fit: the fold's own name for one fold, else a hash of the names (the same folds give the same name)."""
    from mer_keras.data.protocols import fold_stem

    if len(folds) == 1:
        return fold_stem(folds[0].name)
    names = "\n".join(f.name for f in folds)
    return f"group-{len(folds)}-{hashlib.sha256(names.encode()).hexdigest()[:12]}"


