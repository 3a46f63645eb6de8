"""The two ``--mode`` values of ``python -m edge.run``: what each does with the frames and adds to the summary.

:func:`edge.run.run` is the one skeleton both share (options checked, the model loaded, the source
opened, its frames read, counted, drawn into the ``--annotate`` video and stopped by Ctrl-C, each
record written as a JSON line, the summary last); a :class:`Mode` is only what differs:

* :class:`SpotMode` (``--mode spot``, the default): the spotter watches every frame, a spotted
  micro-expression is recognised (:class:`edge.events.SpotRunner`); one record per event.
* :class:`WindowsMode` (``--mode windows``): the model classifies every sliding window
  (:class:`edge.pipeline.WindowRunner`); one record per window.
"""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator

import numpy as np

from edge.errors import EdgeInputError
from edge.events import Event, NoFace, SpotRunner
from edge.pipeline import WindowRunner
from mer_keras.runtime.metadata import ModelInfo
from mer_keras.runtime.spotting import SpotConfig
from mer_keras.runtime.tflite import TFLiteModel


class Mode(ABC):
    """What one ``--mode`` does; :func:`edge.run.run` calls :meth:`start`, then :meth:`records` over
    the frames read (:meth:`interrupted` after a second Ctrl-C), :meth:`close`, and the summary's
    hooks :meth:`describe`, :meth:`timings` and :meth:`conclude`.

    Attributes:
        counts: the mode's counters, in the summary after ``frames`` (kept up to date by :meth:`records`).
        label: the text drawn on each frame of the ``--annotate`` video as it is read; None: frames
            are drawn :attr:`delay` frames behind the stream, with the interval of :attr:`spotted`
            they fall in.
        spotted: the records of the spotted intervals, filled while the stream runs.
        delay: frames the annotated video is written behind the stream (known after :meth:`start`).
        read_ahead: decode frames in a thread of their own (:func:`edge.capture.prefetch`).
    """

    read_ahead = False

    def __init__(self, args: argparse.Namespace):
        self.workers = args.workers
        self.counts: dict[str, int] = {}
        self.label: str | None = None
        self.spotted: list[dict] = []
        self.delay = 0

    @abstractmethod
    def start(self, model: TFLiteModel, info: ModelInfo, fps: float) -> None:
        """Make the mode's runner for a stream of ``fps`` frames/s.

        Raises:
            EdgeInputError: a frame rate (or number of workers) the runner cannot use.
        """

    @abstractmethod
    def records(self, frames: Iterable[np.ndarray]) -> Iterator[dict]:
        """The JSON records of a stream of (H, W, 3) uint8 RGB frames, in stream order, until the frames
        end (what the frames read started is finished)."""

    def interrupted(self) -> Iterable[dict]:
        """The records still owed after a second Ctrl-C stopped :meth:`records` (none by default)."""
        return ()

    def close(self) -> None:
        """Stop the mode's worker threads (none by default)."""

    @abstractmethod
    def one_frame_reason(self) -> str:
        """Why a stream of a single decoded frame is bad input (follows "only 1 frame could be decoded; ")."""

    @abstractmethod
    def describe(self, source: str, fps: float, threads: int) -> dict:
        """The summary's fields before the frame counts: the source, its frame rate, the mode's settings."""

    def timings(self) -> dict:
        """The summary's fields after the speed (none by default)."""
        return {}

    @abstractmethod
    def conclude(self, frames: int, interrupted: bool) -> dict:
        """The summary's closing fields, given the frames read and whether Ctrl-C stopped the stream."""


class WindowsMode(Mode):
    """``--mode windows``: every sliding window classified (``time``, ``time_end``, ``frames``, ``apex``,
    ``label``, ``probabilities``; a ``no_face`` record when a window's onset frame shows no face);
    each annotated frame shows the latest window's label."""

    def __init__(self, args: argparse.Namespace):
        super().__init__(args)
        self.counts = {"windows": 0, "no_face": 0}
        self.label = ""

    def start(self, model: TFLiteModel, info: ModelInfo, fps: float) -> None:
        self.runner = WindowRunner(model, info, fps, workers=self.workers)
        self.classes = info.classes

    def records(self, frames: Iterable[np.ndarray]) -> Iterator[dict]:
        for window in self.runner.windows(frames):
            record = window.record(self.classes)
            self.counts["windows"] += 1
            if window.no_face:
                self.counts["no_face"] += 1
                self.label = "no face"
            else:
                self.label = f"{record['label']} {max(record['probabilities'].values()):.2f}"
            yield record

    def close(self) -> None:
        self.runner.close()

    def one_frame_reason(self) -> str:
        return f"a clip needs at least 2 (a window here is {self.runner.length})"

    def describe(self, source: str, fps: float, threads: int) -> dict:
        return {"source": source, "fps_source": fps, "window_frames": self.runner.length,
                "stride_frames": self.runner.stride, "workers": self.runner.workers, "threads": threads}

    def conclude(self, frames: int, interrupted: bool) -> dict:
        if frames < self.runner.length:
            return {"note": f"the stream has {frames} frames, fewer than one window ({self.runner.length})"}
        return {}


class SpotMode(Mode):
    """``--mode spot``: spot micro- and macro-expressions, recognise the micro ones; one record per
    event (:mod:`edge.events`). The annotated video runs the spotter's latency behind the stream,
    so that each frame is drawn with the interval it falls in.

    Raises:
        EdgeInputError: ``--learned-model`` without ``--spot-method learned``, or a second stage
            that cannot be read (named before the model and the video are opened).
    """

    read_ahead = True  # decoding overlaps the spotting

    def __init__(self, args: argparse.Namespace):
        super().__init__(args)
        if args.learned_model and args.spot_method != "learned":
            raise EdgeInputError("--learned-model needs --spot-method learned")
        try:
            self.cfg = SpotConfig(method=args.spot_method, learned_model=args.learned_model)
        except ValueError as exc:
            raise EdgeInputError(str(exc)) from None
        self.counts = {"micro": 0, "macro": 0, "no_face": 0}

    def start(self, model: TFLiteModel, info: ModelInfo, fps: float) -> None:
        self.runner = SpotRunner(model, info, fps, self.cfg, workers=self.workers)
        self.classes, self.fps, self.delay = info.classes, fps, self.runner.latency_frames

    def records(self, frames: Iterable[np.ndarray]) -> Iterator[dict]:
        for frame in frames:
            yield from self._records(self.runner.push(frame))
        yield from self._records(self.runner.finish())

    def interrupted(self) -> Iterable[dict]:
        return self._records(self.runner.finish())

    def _records(self, events: Iterable[Event | NoFace]) -> Iterator[dict]:
        for event in events:
            record = event.record(self.classes)
            self.counts[record["event"]] += 1
            self.spotted.append(record)
            yield record

    def one_frame_reason(self) -> str:
        return "spotting needs a stream of frames"

    def describe(self, source: str, fps: float, threads: int) -> dict:
        return {"mode": "spot", "source": source, "fps_source": fps, "threads": threads, "workers": self.workers}

    def timings(self) -> dict:
        return {"stage_seconds": {k: round(v, 3) for k, v in self.runner.seconds.items()}}

    def conclude(self, frames: int, interrupted: bool) -> dict:
        if not self.counts["micro"] and not self.counts["macro"] and not interrupted:
            return {"nothing_spotted": self.cfg.why_nothing(frames, self.fps, self.counts["no_face"])}
        return {}


#: ``--mode`` value -> its class.
MODES: dict[str, type[Mode]] = {"spot": SpotMode, "windows": WindowsMode}
