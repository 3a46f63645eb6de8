"""Releasing the memory of fitted models (workaround for TensorFlow's gradient-registry leak)."""

from __future__ import annotations

import gc
from contextlib import contextmanager, nullcontext

from mer_keras._keras import gradient_registry, keras
from mer_keras.train.timing import phase


@contextmanager
def releasing_fit_memory(timed: bool = False):
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
    are kept) and runs the garbage collector. ``timed``: book the release as phase ``release`` of an
    open :func:`mer_keras.train.timing.recording`.
    """
    registry = gradient_registry()
    before = set(registry) if registry is not None else set()
    try:
        yield
    finally:
        with phase("release") if timed else nullcontext():
            keras.backend.clear_session()
            if registry is not None:
                for key in [k for k in registry if k.startswith("CustomGradient-") and k not in before]:
                    del registry[key]
            gc.collect()
