"""``python -m edge.bench``: end-to-end frames per second and per-stage latency of the edge runner.

    python -m edge.bench --model RUN/model_int8.tflite [--video edge/sample.mp4] [--threads 1 2] [--workers 1 2]
        [--fps 200]

The video is decoded once into memory (decoding is timed apart: a camera delivers decoded
frames). Then, for each thread count (OpenCV's process-wide pool and the TFLite interpreter) and
each number of workers (windows prepared at once), the runner goes over the frames as a stream:
per window, the stages face (face mesh on the onset frame), apex (motion search),
representation (alignment + flow/strain, dynamic image, apex frame or sequence) and inference
are timed. ``frames/s`` is frames processed / wall time of the whole pass: the rate of
a live source the runner keeps up with. ``--fps`` sets the stream's frame rate (the window spans
the same time, so more frames at a higher rate); the high-speed cameras of CASME II and SAMM
record at 200 fps. Prints a Markdown table (one row per setting and frame rate).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from edge.capture import StreamStatus, open_capture, read_frames
from edge.errors import EdgeInputError
from edge.model import load
from edge.options import cpu_count, positive
from edge.pipeline import STAGES, WindowRunner

SAMPLE = Path(__file__).with_name("sample.mp4")


def bench(model_path: str, frames: list[np.ndarray], fps: float, threads: int, metadata: str | None = None,
          repeats: int = 1, workers: int = 1, allow_modified: bool = False) -> dict:
    """One timed pass (the best of ``repeats``) over ``frames``: ``threads`` threads, ``workers`` windows at once.

    The model is loaded (and checked against its metadata: :func:`edge.model.load`) before the
    timing; ``allow_modified`` uses a file whose sha256 differs from the recorded one, silently
    (:func:`main` warns once).

    Returns:
        {"threads", "workers", "fps_stream", "window_frames", "stride_frames", "windows", "frames_per_second",
        "ms": {stage: median ms per window}}.
    """
    cv2.setNumThreads(threads)
    model, info = load(model_path, metadata, num_threads=threads, allow_modified=allow_modified, warn=_quiet)
    with WindowRunner(model, info, fps, workers=workers) as runner:
        if len(frames) < runner.length:
            raise EdgeInputError(f"{len(frames)} frames, fewer than one window ({runner.length} frames at "
                                 f"{fps:g} fps): "
                                 "no window to time; use --loops N or a longer video")
        # warm-up, a window per worker: face mesh graphs, interpreter, flow
        for _ in runner.windows(frames[:runner.length + (workers - 1) * runner.stride]):
            pass
        best = None
        for _ in range(repeats):
            t0 = time.perf_counter()
            windows = list(runner.windows(frames))
            wall = time.perf_counter() - t0
            if best is None or wall < best[0]:
                best = (wall, windows)
    wall, windows = best
    analysed = [w for w in windows if not w.no_face]
    ms = {s: round(1e3 * float(np.median([w.seconds[s] for w in analysed])), 2) if analysed else None
          for s in STAGES}
    return {"threads": threads, "workers": workers, "fps_stream": fps, "window_frames": runner.length,
            "stride_frames": runner.stride, "windows": len(windows), "no_face": len(windows) - len(analysed),
            "frames_per_second": round(len(frames) / wall, 1), "ms": ms}


def _quiet(message: str) -> None:
    """The ``warn`` of the loads inside a benchmark: :func:`main` warned once already."""


def bench_spot(model_path: str, frames: list[np.ndarray], fps: float, threads: int, metadata: str | None = None,
               repeats: int = 1, workers: int = 1, allow_modified: bool = False) -> dict:
    """One timed pass (the best of ``repeats``) of the spotting chain over ``frames``.

    The chain is :class:`edge.events.SpotRunner`: face mesh every 0.1 s, aligned face, two flows per
    frame, peak decisions, crops buffered, and the recognition of every spotted micro-expression.
    A warm-up pass over the first second of frames (face mesh graphs, flows, the interpreter) runs
    before the timing, so the first row of a table is timed as the others are.

    Returns:
        {"threads", "fps_stream", "frames", "micro", "macro", "frames_per_second",
         "ms_per_frame": {"spotting", "crop"}, "ms_per_event": {"recognition"}}.
    """
    from edge.events import Event, SpotRunner

    cv2.setNumThreads(threads)
    model, info = load(model_path, metadata, num_threads=threads, allow_modified=allow_modified, warn=_quiet)
    for _ in SpotRunner(model, info, fps, workers=workers).events(frames[:max(2, int(round(fps)))]):
        pass  # warm-up, not timed
    model.predict(np.zeros((1, *model.input_shape), np.float32))  # the recognition's first inference, not timed
    best = None
    for _ in range(repeats):
        runner = SpotRunner(model, info, fps, workers=workers)
        t0 = time.perf_counter()
        events = list(runner.events(frames))
        wall = time.perf_counter() - t0
        if best is None or wall < best[0]:
            best = (wall, events, runner)
    wall, events, runner = best
    spotted = [e for e in events if isinstance(e, Event)]
    micro = [e for e in spotted if e.interval.type == "micro"]
    recognised = [e for e in micro if "recognition" in e.seconds]
    return {"threads": threads, "workers": workers, "fps_stream": fps, "frames": len(frames), "micro": len(micro),
            "macro": len(spotted) - len(micro), "frames_per_second": round(len(frames) / wall, 1),
            "ms_per_frame": {k: round(1e3 * runner.seconds[k] / len(frames), 2) for k in ("spotting", "crop")},
            "ms_per_event": {"recognition": round(1e3 * float(np.mean([e.seconds["recognition"] for e in recognised])),
                                                  1) if recognised else None}}


def recognition_ms(row: dict) -> str:
    """The recognition column of a spot-mode row: ms per recognised event, or why there is none."""
    value = row["ms_per_event"]["recognition"]
    return "nothing spotted" if value is None and not row["micro"] else \
        "none recognised" if value is None else f"{value}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edge.bench", description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--video", default=str(SAMPLE),
                    help=f"video file, frame folder or quoted glob pattern (default: {SAMPLE.name})")
    ap.add_argument("--metadata", default=None)
    ap.add_argument("--threads", type=positive(int), nargs="+", default=sorted({1, cpu_count()}))
    ap.add_argument("--workers", type=positive(int), nargs="+", default=sorted({1, min(2, cpu_count())}),
                    help="windows prepared at once (windows mode), or threads of the spotter's flows (spot mode)")
    ap.add_argument("--fps", type=positive(float), nargs="+", default=None,
                    help="stream frame rates to simulate (default: the video's)")
    ap.add_argument("--loops", type=positive(int), default=1, help="play the video this many times (a longer stream)")
    ap.add_argument("--repeats", type=positive(int), default=1, help="timed passes per setting; the best is kept")
    ap.add_argument("--mode", choices=("spot", "windows"), default="spot",
                    help="spot: the spotting chain of edge.run (default); windows: every sliding window classified")
    ap.add_argument("--allow-modified", action="store_true",
                    help="time a model file whose sha256 differs from the one metadata.json records, with a warning "
                         "(default: refuse it)")
    args = ap.parse_args(argv)

    def warn(message: str) -> None:
        print(f"warning: {message}", file=sys.stderr, flush=True)

    try:
        # a bad model or metadata fails here, before the video is decoded
        load(args.model, args.metadata, allow_modified=args.allow_modified, warn=warn)
        cap, fps, name = open_capture(args.video)
        t0 = time.perf_counter()
        status = StreamStatus()
        frames = list(read_frames(cap, status=status))
        decode = time.perf_counter() - t0
        cap.release()
        if status.error:
            raise EdgeInputError(f"{name}: {status.error}")
        if len(frames) < 2:
            raise EdgeInputError(f"{name}: {len(frames)} frame(s) could be decoded; a clip needs at least 2")
        frames = frames * args.loops
        rates = args.fps or [fps or 100.0]
        print(f"{Path(args.model).name} on {name}: {len(frames)} frames {frames[0].shape[1]}x{frames[0].shape[0]}, "
              f"decoded at {len(frames) / args.loops / decode:.0f} frames/s; {platform.machine()}, "
              f"{cpu_count()} CPUs")
        if args.mode == "spot":
            print("| threads | workers | stream fps | frames | spotted micro / macro | spotting ms/frame | "
                  "crop ms/frame | recognition ms/event | frames/s | keeps up |")
            print("|---|---|---|---|---|---|---|---|---|---|")
            for rate in rates:
                for threads, workers in [(t, w) for w in args.workers for t in args.threads]:
                    r = bench_spot(args.model, frames, rate, threads, args.metadata, args.repeats, workers,
                                   args.allow_modified)
                    print(f"| {threads} | {workers} | {rate:g} | {r['frames']} | {r['micro']} / {r['macro']} | "
                          f"{r['ms_per_frame']['spotting']} | {r['ms_per_frame']['crop']} | "
                          f"{recognition_ms(r)} | {r['frames_per_second']} | "
                          f"{'yes' if r['frames_per_second'] >= rate else 'no'} |", flush=True)
            return 0
        print("| threads | workers | stream fps | window / stride (frames) | face ms | apex ms | representation ms | "
              "inference ms | frames/s | keeps up |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for rate in rates:
            for threads, workers in [(t, w) for w in args.workers for t in args.threads]:
                r = bench(args.model, frames, rate, threads, args.metadata, args.repeats, workers, args.allow_modified)
                ms = r["ms"]
                print(f"| {threads} | {workers} | {rate:g} | {r['window_frames']} / {r['stride_frames']} | "
                      f"{ms['face']} | {ms['apex']} | {ms['representation']} | {ms['inference']} | "
                      f"{r['frames_per_second']} | "
                      f"{'yes' if r['frames_per_second'] >= rate else 'no'} |", flush=True)
    except EdgeInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
