"""The command line of ``python -m edge.run``: its options, and the checks of them made before the
model is loaded (the ``--annotate`` path). The stream itself is run by :func:`edge.run.run`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from edge.errors import EdgeInputError

#: The first line of ``--help``.
DESCRIPTION = ("``python -m edge.run``: spot micro-expressions in a video, frame folder or camera and recognise them, "
               "JSON lines out.")


def cpu_count() -> int:
    """CPUs this process may run on (its affinity mask, so a container's or taskset's limit), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS and Windows have no sched_getaffinity
        return os.cpu_count() or 1


def positive(kind):
    """An argparse type: ``kind`` (int or float) of a finite number > 0, else a usage error."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (value > 0 and np.isfinite(value)):  # NaN and infinity are not > 0 and finite
            raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
        return value
    return parse


def parse_args(argv=None) -> argparse.Namespace:
    """The options of ``python -m edge.run`` (``argv`` default: ``sys.argv[1:]``); a bad one is a usage
    error on stderr and ``SystemExit(2)``, a ``--help`` ``SystemExit(0)``."""
    ap = argparse.ArgumentParser(prog="python -m edge.run", description=DESCRIPTION)
    ap.add_argument("--model", required=True, help=".tflite model (metadata.json beside it), or a preset's name "
                                                   "(its model_int8.tflite), e.g. ststnet_megc2019_composite")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--video", help="video file, folder of frame images, or a quoted glob pattern of them")
    src.add_argument("--camera", type=int, help="camera index (OpenCV)")
    ap.add_argument("--metadata", help="metadata.json (default: beside the model)")
    ap.add_argument("--mode", choices=("spot", "windows"), default="spot",
                    help="spot: report spotted micro-/macro-expressions only (default); windows: classify every window")
    ap.add_argument("--spot-method", choices=("analytic", "learned"), default="analytic",
                    help="spot mode: keep candidates by the analytic rules (default) or the learned second stage "
                         "(docs/SPOTTING.md)")
    ap.add_argument("--learned-model", default=None,
                    help="with --spot-method learned: a second stage written by tools/fit_spotter.py")
    ap.add_argument("--annotate", help="write the video with the spotted intervals (or each window's label) "
                                       "drawn (.mp4)")
    ap.add_argument("--threads", type=positive(int), default=None,
                    help="threads of OpenCV's (process-wide) pool and of the interpreter "
                         "(default: CPUs / workers, at least 1)")
    ap.add_argument("--workers", type=positive(int), default=min(2, cpu_count()),
                    help="windows prepared at once (default: 2, or 1 on one CPU); each holds its frames in memory")
    ap.add_argument("--delegate", default=None, help="external TFLite delegate library (e.g. the GPU delegate .so)")
    ap.add_argument("--window", type=positive(float), default=None, help="window length in seconds (default: metadata)")
    ap.add_argument("--fps", type=positive(float), default=None, help="frame rate when the source does not state one")
    ap.add_argument("--max-frames", type=positive(int), default=None, help="stop after this many frames")
    ap.add_argument("--allow-modified", action="store_true",
                    help="use a model file whose sha256 differs from the one metadata.json records, with a warning "
                         "(default: refuse it)")
    return ap.parse_args(argv)


#: Suffixes ``--annotate`` may name (containers OpenCV writes mp4v video into).
ANNOTATE_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv")


def check_annotate(target: str | None, video: str | None) -> None:
    """Refuse an ``--annotate`` path the video cannot be written to, before the model is loaded.

    Raises:
        EdgeInputError: ``"{target}: cannot write a video there (...)"``: a folder, a path whose
            folder is missing, a file or not writable, a symbolic link to nothing (or a loop of
            links), a name without a video suffix (an existing file of another kind would be
            replaced), or the input video itself.
    """
    if target is None:
        return
    path = Path(target)
    reason = None
    if path.is_symlink() and not path.exists():
        reason = "a symbolic link to nothing, or a loop of links"
    elif path.is_dir():
        reason = "a folder; expected a video file path such as out.mp4"
    elif not path.parent.is_dir():
        reason = f"{path.parent} is {'a file' if path.parent.exists() else 'not an existing folder'}"
    elif not os.access(path.parent, os.W_OK | os.X_OK):
        reason = f"{path.parent} is not writable"
    elif path.suffix.lower() not in ANNOTATE_SUFFIXES:
        reason = f"expected a video file name ending in {', '.join(ANNOTATE_SUFFIXES)}"
    elif video is not None and path.exists() and Path(video).exists() and path.samefile(video):
        reason = "it is the --video being read"
    if reason:
        raise EdgeInputError(f"{target}: cannot write a video there ({reason})")
