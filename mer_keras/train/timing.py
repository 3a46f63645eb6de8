"""Where a training job's time goes: wall-clock seconds per phase, recorded only when asked.

The trainer marks its phases (``with phase("build"): ...``); nothing is recorded unless a caller
opens :func:`recording` (``tools/bench_loso.py`` does), so the marks cost two ``perf_counter``
calls when nobody listens. TF-free.

Phases (seconds of wall-clock time, summed over folds):

* ``build``: create, initialise and compile the model (and the fold copies of a multi-fold model).
* ``reset``: set a built model back to its seeded initial weights and a fresh optimizer state.
* ``dataset``: build the fold's tf.data training pipeline.
* ``trace``: the first epoch's excess over a steady epoch (graph tracing, iterator start-up), see
  :class:`EpochClock`.
* ``train_steps``: the rest of ``fit`` (the training steps proper, callbacks included).
* ``predict``: the test subjects' class probabilities.
* ``write``: the fold's result file (the job's ``on_fold_end``).
* ``release``: freeing the models and graphs of the job (:mod:`mer_keras.train.memory`).
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field

PHASES = ("build", "reset", "dataset", "trace", "train_steps", "predict", "write", "release")


@dataclass
class PhaseTimes:
    """Seconds per phase and how many times each ran.

    Attributes:
        seconds: {phase: summed wall-clock seconds (float >= 0)}. counts: {phase: occurrences}.
        epochs: training epochs run; samples: training samples seen (for samples/s).
    """

    seconds: dict = field(default_factory=lambda: defaultdict(float))
    counts: dict = field(default_factory=lambda: defaultdict(int))
    epochs: int = 0
    samples: int = 0

    def add(self, name: str, seconds: float) -> None:
        """Add ``seconds`` to phase ``name`` (one of :data:`PHASES`).

        Raises:
            ValueError: an unknown phase name.
        """
        if name not in PHASES:
            raise ValueError(f"unknown phase {name!r}; phases are {', '.join(PHASES)}")
        self.seconds[name] += max(0.0, float(seconds))
        self.counts[name] += 1

    def total(self) -> float:
        """Seconds over all phases."""
        return float(sum(self.seconds.values()))


_active: PhaseTimes | None = None


@contextmanager
def recording():
    """Record the phases of everything run inside the block; yields the :class:`PhaseTimes`."""
    global _active
    previous, _active = _active, PhaseTimes()
    try:
        yield _active
    finally:
        _active = previous


@contextmanager
def phase(name: str):
    """Time the block as phase ``name`` when a :func:`recording` is open (else do nothing)."""
    if _active is None:
        yield
        return
    start = time.perf_counter()
    try:
        yield
    finally:
        if _active is not None:
            _active.add(name, time.perf_counter() - start)


class EpochClock:
    """Splits a ``fit`` into the first epoch's excess (``trace``) and the rest (``train_steps``).

    Call :meth:`fit_begin` when ``fit`` starts, :meth:`epoch_begin` / :meth:`epoch_end` around each
    epoch (:class:`mer_keras.train.callbacks.EpochTiming` does) and :meth:`close` after the fit.
    ``trace`` = first epoch - median of the later epochs (0 when the fit ran one epoch); everything
    else of the fit is ``train_steps``.
    """

    def __init__(self, samples_per_epoch: int):
        self.samples_per_epoch = int(samples_per_epoch)
        self.durations: list[float] = []
        self._start = None
        self._fit_start = time.perf_counter()

    def fit_begin(self) -> None:
        self._fit_start = time.perf_counter()

    def epoch_begin(self) -> None:
        self._start = time.perf_counter()

    def epoch_end(self) -> None:
        if self._start is not None:
            self.durations.append(time.perf_counter() - self._start)

    def close(self) -> None:
        """Book the fit's time into the open recorder (if any)."""
        rec = _active
        if rec is None:
            return
        total = time.perf_counter() - self._fit_start
        trace = 0.0
        if len(self.durations) > 1:
            later = sorted(self.durations[1:])
            trace = max(0.0, self.durations[0] - later[len(later) // 2])
        rec.add("trace", trace)
        rec.add("train_steps", total - trace)
        rec.epochs += len(self.durations)
        rec.samples += len(self.durations) * self.samples_per_epoch
