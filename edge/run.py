"""``python -m edge.run``: spot micro-expressions in a video, frame folder or camera and recognise them, JSON lines out.

    python -m edge.run --model RUN/model_int8.tflite --video long.mp4 [--annotate out.mp4]
    python -m edge.run --model RUN/model_int8.tflite --video SAMM_longvideos/006_1 --fps 200
    python -m edge.run --model RUN/model_int8.tflite --camera 0 [--max-frames 20000]
    python -m edge.run --model RUN/model_int8.tflite --video clip.mp4 --mode windows

Reads ``metadata.json`` beside the model (``--metadata`` to point elsewhere).

``--mode spot`` (the default): the spotter (:mod:`mer_keras.runtime.spotting`) watches every frame;
one JSON object per line on stdout per spotted event and nothing else while the face is still:
``event`` (``micro`` or ``macro``), ``time`` and ``time_end`` (seconds from the first frame),
``frames`` ([onset, offset] frame index), ``apex``, ``score`` (peak over the motion near its
neutral references), and for a micro-expression ``label`` and ``probabilities`` (see
:mod:`edge.events`). An event is printed about ``macro_k`` + 0.2 s after its offset.

``--mode windows``: the model classifies every sliding window (``time``, ``time_end``, ``frames``,
``apex``, ``label``, ``probabilities``; ``{"event": "no_face", ...}`` when a window's onset frame
shows no face), whatever happens in it: a classifier's view, not a detector's.

A summary line (``"event": "summary"``) ends the output. Bad input (missing, truncated or foreign
model, a model file whose sha256 is not the one metadata.json records (``--allow-modified`` uses it
with a warning), metadata that is unreadable or does not match the model, a video that cannot be
decoded or holds fewer than 2 frames, a camera that does not open) prints one line on stderr and
exits with code 2. A stream that stops early (a video damaged in the middle or truncated, an
unreadable frame image) keeps what came before the damage, puts ``decode_error`` in the summary,
prints it on stderr and exits with code 3. A frame folder (or a quoted glob pattern) is read in the
order of the number in the file names; frames carry no frame rate, so give ``--fps`` (else the
training data's, from metadata.json).

Ctrl-C (SIGINT) stops reading the stream: the windows and events of the frames read are finished
and printed, the ``--annotate`` video is closed (it plays, and holds every frame read), the
summary says ``"interrupted": true`` with ``frames`` of ``frames_total``, one line on stderr says
how many frames were processed of how many, and the exit code is 130. A second Ctrl-C stops at
once (the video is still closed). The annotated video is written beside its target and read back
when it is closed; one that cannot be written completely (a full disk: OpenCV's writer fails
silently) is removed, named in ``annotate_error`` of the summary and on stderr, exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections import deque
from pathlib import Path

import cv2
import numpy as np

from edge.capture import StreamStatus, open_capture, prefetch, read_frames, stated_frames
from edge.errors import EdgeInputError
from edge.model import load
from edge.modes import MODES
from edge.options import check_annotate, cpu_count, parse_args


def draw(frame_rgb: np.ndarray, text: str, colour=(255, 255, 0)) -> np.ndarray:
    """A BGR copy of the frame with ``text`` in its top-left corner."""
    bgr = cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR)
    scale = max(0.4, frame_rgb.shape[1] / 640)
    cv2.putText(bgr, text, (8, int(24 * scale)), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(bgr, text, (8, int(24 * scale)), cv2.FONT_HERSHEY_SIMPLEX, scale, colour[::-1], 1, cv2.LINE_AA)
    return bgr


class _Annotator:
    """Writes the ``--annotate`` video atomically (beside its target, renamed when complete).

    In spot mode the frames are written ``delay`` frames behind the stream, so that the spotted
    intervals (``events``: their records, a list the mode fills while the stream runs) are known when
    their frames are drawn; in windows mode (delay 0) each frame is drawn with the text given with it.

    OpenCV's writer fails silently (a full disk leaves a file without its index, "moov atom not
    found"), so the free space is looked at every :attr:`CHECK_EVERY` frames and the file is read
    back when it is closed (:meth:`close`): a video that cannot be written completely is removed
    and :attr:`error` names it; what is being analysed goes on without it.

    Attributes:
        written: frames handed to the writer. error: why the video could not be written, or None.
    """

    CHECK_EVERY = 64

    def __init__(self, target: str | None, fps: float, delay: int, events: list[dict]):
        self.target, self.fps, self.writer = target, fps, None
        self.partial = Path(target).with_name(f".partial-{Path(target).name}") if target else None
        self.pending: deque = deque()
        self.delay, self.events = delay, events
        self.written, self.error = 0, None

    def add(self, index: int, frame: np.ndarray, text: str | None = None) -> None:
        if self.target is None or self.error:
            return
        self.pending.append((index, frame, text))
        while len(self.pending) > self.delay and not self.error:
            self._write(*self.pending.popleft())

    def _write(self, index: int, frame: np.ndarray, text: str | None) -> None:
        if self.writer is None:
            h, w = frame.shape[:2]
            self.writer = cv2.VideoWriter(str(self.partial), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
            if not self.writer.isOpened():
                raise EdgeInputError(f"{self.target}: cannot write a video there")
        colour = (255, 255, 0)
        if text is None:
            text = ""
            for record in self.events:
                if record["frames"][0] <= index <= record["frames"][1]:
                    text = f"{record['event']} {record.get('label', '')}".strip()
                    colour = (255, 64, 64) if record["event"] == "micro" else (64, 160, 255)
        self.writer.write(draw(frame, text, colour))
        self.written += 1
        if self.written % self.CHECK_EVERY == 0 and _disk_full(self.partial.parent):
            self._fail("the disk is full")

    def _fail(self, reason: str) -> None:
        """Give the video up: release the writer, remove the partial file, record :attr:`error`."""
        if self.writer is not None:
            self.writer.release()
        self.partial.unlink(missing_ok=True)
        self.pending.clear()
        self.error = (f"{self.target}: the annotated video could not be written ({reason}; {self.written} frames "
                      "were drawn); nothing was kept there")

    def _unreadable(self) -> str | None:
        """Why the closed partial file is not the video written, or None when it plays back whole."""
        if not self.partial.is_file() or self.partial.stat().st_size == 0:
            return "nothing reached the file: disk full or write error"
        with _silenced_stderr():  # FFmpeg's own complaint ("moov atom not found"): said below in one line
            cap = cv2.VideoCapture(str(self.partial))
            opened = cap.isOpened()
            stated = cap.get(cv2.CAP_PROP_FRAME_COUNT) if opened else 0
            first = cap.read()[0] if opened else False
            cap.release()
        full = " (the disk is full)" if _disk_full(self.partial.parent) else ": disk full or write error"
        if not opened or not first:
            return f"the file written cannot be read back{full}"
        if self.partial.suffix.lower() != ".mkv" and stated > 0 and int(round(stated)) != self.written:
            return f"the file holds {int(round(stated))} of the {self.written} frames drawn{full}"
        return None

    def close(self) -> None:
        """Write the frames still pending, close the video, check it and move it onto the target."""
        if self.target is None or self.error:
            return
        while self.pending and not self.error:
            self._write(*self.pending.popleft())
        if self.writer is None or self.error:
            return
        self.writer.release()
        problem = self._unreadable()
        if problem:
            self._fail(problem)
        elif self.partial.exists():
            os.replace(self.partial, self.target)


def _disk_full(folder: Path) -> bool:
    """Whether the file system of ``folder`` has no block left for this process (root may use the reserved ones)."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return (st.f_bfree if os.geteuid() == 0 else st.f_bavail) == 0


@contextlib.contextmanager
def _silenced_stderr():
    """File descriptor 2 sent to /dev/null for the block (native libraries' own lines)."""
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    os.close(null)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class StopRequest:
    """Ctrl-C (SIGINT) while a stream is read: the first one asks the reader to stop (:attr:`requested`)
    so that what was read is finished and the outputs closed; a second one raises
    ``KeyboardInterrupt`` at once. Installed only in the main thread (Python delivers signals there);
    the previous handler comes back when the block ends."""

    def __init__(self):
        self.requested, self._old = False, None

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._old = signal.getsignal(signal.SIGINT) or signal.default_int_handler
            signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def _end_of_stream(summary: dict, total: int | None, annotator: _Annotator, interrupted: bool,
                   warnings: list[str], status: StreamStatus) -> None:
    """The summary's fields about how the stream and the annotated video ended."""
    if total is not None:
        summary["frames_total"] = total
    if annotator.target is not None:
        summary["annotated_frames"] = 0 if annotator.error else annotator.written
    if interrupted:
        summary["interrupted"] = True
    if annotator.error:
        summary["annotate_error"] = annotator.error
    if warnings:
        summary["warnings"] = list(warnings)
    if status.error:
        summary["decode_error"] = status.error


def _warner(warnings: list[str]):
    """A ``warn`` callback: one ``warning:`` line on stderr, kept for the summary."""
    def warn(message: str) -> None:
        warnings.append(message)
        print(f"warning: {message}", file=sys.stderr, flush=True)
    return warn


def run(args: argparse.Namespace, out=None) -> dict:
    """Process the stream in ``args.mode`` (``spot`` unless given); write its JSON lines to ``out`` (default:
    the current ``sys.stdout``), the summary last; return the summary.

    The one skeleton of both modes (:mod:`edge.modes` holds what differs): the ``--annotate`` path and
    the mode's options checked, the model loaded and checked against its metadata, the source opened,
    its frames read, counted and drawn into the ``--annotate`` video until the stream ends,
    ``--max-frames`` or Ctrl-C (:class:`StopRequest`), through the mode's :meth:`~edge.modes.Mode.records`.

    Raises:
        EdgeInputError: bad input (see the module docstring), or a stream of which fewer than 2 frames
            could be decoded.
    """
    out = out or sys.stdout
    check_annotate(getattr(args, "annotate", None), getattr(args, "video", None))
    mode = MODES[getattr(args, "mode", "spot")](args)
    # a core per thread: with 2 workers on 2 cores, one OpenCV thread beats two (docs/EDGE.md, Speed)
    threads = args.threads or max(1, cpu_count() // args.workers)
    cv2.setNumThreads(threads)
    warnings: list[str] = []
    model, info = load(args.model, args.metadata, num_threads=threads, window_seconds=args.window,
                       delegate=args.delegate, allow_modified=getattr(args, "allow_modified", False),
                       warn=_warner(warnings))
    cap, fps, name = open_capture(args.video, args.camera)
    fps = fps or args.fps or info.fps
    total = stated_frames(cap, args.max_frames)
    try:
        mode.start(model, info, fps)
    except EdgeInputError:
        cap.release()
        raise
    annotator = _Annotator(args.annotate, fps, mode.delay, mode.spotted)
    status, interrupted, n = StreamStatus(), False, 0
    t0 = time.perf_counter()

    def frames(stop: StopRequest):
        nonlocal n
        stream = read_frames(cap, args.max_frames, status)
        for frame in prefetch(stream) if mode.read_ahead else stream:
            if stop.requested:  # Ctrl-C: what the frames read started is finished, then the outputs closed
                break
            annotator.add(n, frame, mode.label)
            n += 1
            yield frame

    def emit(records):
        for record in records:
            out.write(json.dumps(record) + "\n")
            out.flush()

    with StopRequest() as stop:  # also while the outputs are closed: a first Ctrl-C then changes nothing
        try:
            emit(mode.records(frames(stop)))
        except KeyboardInterrupt:  # a second Ctrl-C (or one outside the main thread): still close the video
            interrupted = True
            emit(mode.interrupted())
        finally:
            mode.close()
            cap.release()
            annotator.close()
        interrupted = interrupted or stop.requested
    if n == 0 and not interrupted:
        raise EdgeInputError(f"{name}: no frame could be decoded" + (f" ({status.error})" if status.error else ""))
    if n == 1 and not interrupted:  # no clip at all, let alone a window: bad input, not a short stream
        raise EdgeInputError(f"{name}: only 1 frame could be decoded; {mode.one_frame_reason()}")
    seconds = time.perf_counter() - t0
    summary = {"event": "summary", **mode.describe(name, fps, threads), "frames": n, **mode.counts,
               "seconds": round(seconds, 3), "frames_per_second": round(n / seconds, 1) if seconds > 0 else None,
               **mode.timings()}
    _end_of_stream(summary, total, annotator, interrupted, warnings, status)
    summary.update(mode.conclude(n, interrupted))
    out.write(json.dumps(summary) + "\n")
    return summary


def interrupted_line(summary: dict, target: str | None) -> str:
    """The one stderr line of a stream stopped by Ctrl-C: frames processed of how many, and the video."""
    n, total = summary.get("frames", 0), summary.get("frames_total")
    line = (f"interrupted: {n} of the {total} frames of {summary['source']} were processed" if total
            else f"interrupted: {n} frames of {summary['source']} were processed")
    if target is not None and "annotated_frames" in summary:
        line += f"; {target} holds {summary['annotated_frames']} of them"
    return line + " (the output above covers them)"


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        summary = run(args)
        if summary.get("annotate_error"):  # the analysis is complete, its video is not
            print(f"error: {summary['annotate_error']}", file=sys.stderr)
            return 2
        if summary.get("interrupted"):
            print(interrupted_line(summary, args.annotate), file=sys.stderr)
            return 130
        if summary.get("decode_error"):
            print(f"error: {summary['source']}: {summary['decode_error']}; the windows before it were written",
                  file=sys.stderr)
            return 3
        if summary.get("nothing_spotted"):  # the run worked; say why it found nothing, and what to try
            print(summary["nothing_spotted"], file=sys.stderr)
    except EdgeInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the operating system's refusal (a full disk, a folder removed meanwhile): its path
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before the stream was read (loading the model, opening the video)
        print("interrupted: no frame was processed", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
