"""File-system faults: outputs and caches that cannot be written, paths of the wrong kind, symbolic-link loops.

Every command checks that it can write its outputs before it computes anything, and says which path
is wrong and why in one line (exit code 2). The tests run as root, where ``chmod`` does not stop a
write, so an unwritable place is a path under a regular file (``afile/sub``) or an existing file
where a folder is written. Nothing already computed may be lost: a run's ``results.json`` and
``predictions.csv``, or the video being read, are left byte for byte as they were (checked against
copies in ``reference/``).

Files, under ``filesystem/``: ``afile`` (a regular file), ``loop_a`` <-> ``loop_b`` (a loop of
symbolic links), ``dangling`` (a link to nothing), ``clip.jpg/`` and ``movie.mp4/`` (empty folders
named like an image and a video), ``run/`` (a finished run: the corpus's tiny model, its
metadata, a results.json and a LOSO predictions.csv), ``run_blocked/`` (the same, with a folder
where ``model_fp32.tflite`` would be written), ``input.mp4`` (a copy of the good video) and
``reference/`` (copies of what must not change).
"""

from __future__ import annotations

import json
import os
import shutil

from tests.helpers.cases import Case, _call

KIND = "file-system faults"

_RESULTS = {"model": "ststnet", "dataset": "synthetic", "overall": {"accuracy": 0.5, "uf1": 0.4, "uar": 0.45},
            "note": "the LOSO results of a finished run: no command may replace them"}
_PREDICTIONS = "subject,clip,database,label,prediction,p_negative,p_positive,p_surprise\n" \
               "sub01,clip001,synthetic,negative,negative,0.6,0.3,0.1\n"


def build(corpus) -> None:
    fs = corpus / "filesystem"
    (fs / "afile").write_text("a regular file where a folder is expected\n")
    os.symlink("loop_b", fs / "loop_a")
    os.symlink("loop_a", fs / "loop_b")
    os.symlink("nowhere/at/all", fs / "dangling")
    (fs / "clip.jpg").mkdir()
    (fs / "movie.mp4").mkdir()
    for name, blocked in (("run", False), ("run_blocked", True)):
        run = fs / name
        run.mkdir()
        shutil.copyfile(corpus / "models/good.keras", run / "model.keras")
        shutil.copyfile(corpus / "models/metadata.json", run / "metadata.json")
        shutil.copyfile(corpus / "runs/good/config.json", run / "config.json")
        (run / "results.json").write_text(json.dumps(_RESULTS, indent=2))
        (run / "predictions.csv").write_text(_PREDICTIONS)
        if blocked:
            (run / "model_fp32.tflite").mkdir()  # a folder where the export's file goes
    shutil.copyfile(corpus / "videos/good.mp4", fs / "input.mp4")
    ref = fs / "reference"
    ref.mkdir()
    for name in ("results.json", "predictions.csv", "metadata.json"):
        shutil.copyfile(fs / "run" / name, ref / name)
    shutil.copyfile(fs / "input.mp4", ref / "input.mp4")
    # links inside the data: a manifest's clip folder, its image, a frame of a clip, the manifest itself
    from tests.helpers.corrupt import encode, face_frames

    clip = fs / "clip_with_looped_frame"
    clip.mkdir()
    for i, f in enumerate(face_frames(6), start=1):
        (clip / f"frame{i}.jpg").write_bytes(encode(f, ".jpg"))
    os.symlink("x7", clip / "frame7.jpg")
    os.symlink("frame7.jpg", clip / "x7")
    header = "subject,label,frames,path,onset,apex,offset\n"
    (fs / "loop_frames.csv").write_text(header + "s1,positive,loop_a,,,,\n")
    (fs / "loop_image.csv").write_text(header + "s1,positive,,loop_a,,,\n")
    (fs / "looped_frame.csv").write_text(header + "s1,positive,clip_with_looped_frame,,1,3,6\n")
    os.symlink("loop_b", fs / "manifest_loop.csv")


# -- checks: what must hold besides the message ------------------------------------------------

def _unchanged(*names: str):
    """A check: ``filesystem/run/<name>`` (``input.mp4``: ``filesystem/input.mp4``) is byte for byte its reference copy."""
    def check(root, outcome) -> list[str]:
        fs = root / "filesystem"
        out = []
        for name in names:
            path = fs / name if name == "input.mp4" else fs / "run" / name
            if not path.is_file() or path.read_bytes() != (fs / "reference" / name).read_bytes():
                out.append(f"{path} was changed or removed")
        return out
    return check


def _absent(*rels: str):
    """A check: nothing was created at ``rels`` (relative to the corpus root)."""
    def check(root, outcome) -> list[str]:
        return [f"{root / rel} was created" for rel in rels if os.path.lexists(root / rel)]
    return check


def _run_untouched(name: str = "run"):
    """A check: ``filesystem/<name>`` holds the files it was built with, and no other."""
    def check(root, outcome) -> list[str]:
        built = {"model.keras", "metadata.json", "config.json", "results.json", "predictions.csv"}
        if name == "run_blocked":
            built.add("model_fp32.tflite")
        found = {p.name for p in (root / "filesystem" / name).iterdir()}
        return [f"{root / 'filesystem' / name} holds new files {sorted(found - built)}"] if found != built else []
    return check


def _both(*checks):
    def check(root, outcome) -> list[str]:
        return [p for c in checks for p in c(root, outcome)]
    return check


def cases() -> list[Case]:
    from mer_keras.errors import OptionError

    f = "{c}/filesystem"
    run = f"{f}/run"
    cache = ["--cache-dir", "{c}/cache"]
    train = ["train", "--subjects", "3", "--clips", "2", "--epochs", "1", "--no-export"]
    edge = ["--model", "{c}/models/good.tflite", "--video", "{c}/videos/good.mp4"]
    file_not_folder = "a file, not a folder"
    loop = "a symbolic link to nothing (or a loop of links)"
    return [
        # train and tune: the run folder's parent and the cache, before the data is built
        Case("train --out that is a file", "cli", [*train, "--out", f"{f}/afile", *cache], 2, f"--out {f}/afile",
             file_not_folder, kind=KIND),
        Case("train --out under a file (not writable)", "cli", [*train, "--out", f"{f}/afile/runs", *cache], 2,
             f"{f}/afile/runs: {f}/afile", "is a file, not a folder", kind=KIND),
        Case("manifest whose clip folder is a loop of symbolic links", "cli",
             ["data", "prepare", "manifest", "--root", f"{f}/loop_frames.csv", *cache, "--strict"], 2,
             f"{f}/loop_frames.csv:2", "is a loop of symbolic links", kind=KIND),
        Case("manifest whose image is a loop of symbolic links", "cli",
             ["data", "prepare", "manifest", "--root", f"{f}/loop_image.csv", *cache, "--strict"], 2,
             f"{f}/loop_image.csv:2", "is a loop of symbolic links", kind=KIND),
        Case("clip folder holding a frame that is a loop of symbolic links", "cli",
             ["data", "prepare", "manifest", "--root", f"{f}/looped_frame.csv", *cache, "--strict"], 2,
             f"{f}/clip_with_looped_frame/frame7.jpg", "a loop of symbolic links?", kind=KIND),
        Case("manifest path that is a loop of symbolic links", "cli",
             ["data", "prepare", "manifest", "--root", f"{f}/manifest_loop.csv", *cache], 2,
             f"{f}/manifest_loop.csv", "a symbolic link to nothing or a loop of links", kind=KIND),
        Case("train --out that is a loop of symbolic links", "cli", [*train, "--out", f"{f}/loop_a", *cache], 2,
             f"--out {f}/loop_a", loop, kind=KIND),
        Case("train --out under a link to nothing", "cli", [*train, "--out", f"{f}/dangling/runs", *cache], 2,
             f"{f}/dangling/runs: {f}/dangling", "is a symbolic link to nothing", kind=KIND,
             check=_absent("filesystem/nowhere")),
        Case("train --cache-dir that is a file", "cli", [*train, "--out", f"{f}/train_out", "--cache-dir", f"{f}/afile"],
             2, f"--cache-dir {f}/afile", file_not_folder, kind=KIND, check=_absent("filesystem/train_out")),
        Case("train --cache-dir that is a loop of symbolic links", "cli",
             [*train, "--out", f"{f}/train_out", "--cache-dir", f"{f}/loop_b"], 2, f"--cache-dir {f}/loop_b", loop,
             kind=KIND, check=_absent("filesystem/train_out")),
        Case("tune --out under a file (not writable)", "cli",
             ["tune", "--subjects", "3", "--clips", "2", "--out", f"{f}/afile/tune", *cache], 2,
             f"--out {f}/afile/tune", "is a file, not a folder", kind=KIND),
        Case("tune --cache-dir under a file", "cli",
             ["tune", "--subjects", "3", "--clips", "2", "--out", f"{f}/tune_out", "--cache-dir", f"{f}/afile/cache"], 2,
             f"--cache-dir {f}/afile/cache", "is a file, not a folder", kind=KIND, check=_absent("filesystem/tune_out")),
        # evaluate: the evaluation folder, the cache, and the run's own results
        Case("evaluate --out that is a file", "cli", ["evaluate", run, "--out", f"{f}/afile", *cache], 2,
             f"--out {f}/afile", file_not_folder, kind=KIND),
        Case("evaluate --out that is the run folder itself", "cli", ["evaluate", run, "--out", run, *cache], 2,
             f"--out {run}", "results.json and confusion_matrix.png would replace its own", kind=KIND,
             check=_both(_unchanged("results.json", "predictions.csv"), _run_untouched())),
        Case("evaluate --cache-dir under a file", "cli",
             ["evaluate", run, "--out", f"{f}/eval_out", "--cache-dir", f"{f}/afile/cache"], 2,
             f"--cache-dir {f}/afile/cache", "is a file, not a folder", kind=KIND, check=_absent("filesystem/eval_out")),
        # export: the run folder it writes into
        Case("export into a run where a folder stands in place of model_fp32.tflite", "cli", ["export", f"{f}/run_blocked"],
             2, f"{f}/run_blocked/model_fp32.tflite", "a folder; expected a file path to write", kind=KIND,
             check=_run_untouched("run_blocked")),
        Case("export given a loop of symbolic links as RUN", "cli", ["export", f"{f}/loop_a"], 2, f"{f}/loop_a",
             "a symbolic link to nothing (or a loop of links); expected a finished run folder", kind=KIND),
        # explain: the PNG
        Case("explain --out under a file (not writable)", "cli",
             ["explain", run, "--sample", "sub01/clip001", "--out", f"{f}/afile/cam.png"], 2,
             f"--out {f}/afile/cam.png", "is a file, not a folder", kind=KIND),
        Case("explain --out that is a loop of symbolic links", "cli",
             ["explain", run, "--sample", "sub01/clip001", "--out", f"{f}/loop_a"], 2, f"--out {f}/loop_a", loop,
             kind=KIND),
        Case("explain --out a run's results.json", "cli",
             ["explain", run, "--sample", "sub01/clip001", "--out", f"{run}/results.json"], 2,
             f"--out {run}/results.json", "expected a .png file path", kind=KIND, check=_unchanged("results.json")),
        # predict: the table file, the cache, the model and the inputs
        Case("predict --out under a file (not writable)", "cli",
             ["predict", run, "{c}/images/good.png", "--out", f"{f}/afile/p.csv", *cache], 2, f"--out {f}/afile/p.csv",
             "is a file, not a folder", kind=KIND),
        Case("predict --out an existing folder", "cli", ["predict", run, "{c}/images/good.png", "--out", run, *cache], 2,
             f"--out {run}", "a folder; expected a file path to write", kind=KIND, check=_run_untouched()),
        Case("predict --out a run's results.json", "cli",
             ["predict", run, "{c}/images/good.png", "--out", f"{run}/results.json", *cache], 2,
             f"--out {run}/results.json", "an existing file that this command did not write", kind=KIND,
             check=_unchanged("results.json")),
        Case("predict --out a run's LOSO predictions.csv", "cli",
             ["predict", run, "{c}/images/good.png", "--out", f"{run}/predictions.csv", *cache], 2,
             f"--out {run}/predictions.csv", "an existing file that this command did not write", kind=KIND,
             check=_unchanged("predictions.csv")),
        Case("predict --cache-dir that is a file", "cli",
             ["predict", run, "{c}/images/good.png", "--cache-dir", f"{f}/afile"], 2, f"--cache-dir {f}/afile",
             file_not_folder, kind=KIND),
        Case("predict with a loop of symbolic links as the model", "cli",
             ["predict", f"{f}/loop_a", "{c}/images/good.png", *cache], 2, f"{f}/loop_a", loop, kind=KIND),
        Case("predict a folder named like an image", "cli", ["predict", run, f"{f}/clip.jpg", *cache], 2,
             f"{f}/clip.jpg", "a folder named like an image or video file, holding no frame images", kind=KIND),
        Case("predict a folder named like a video", "cli", ["predict", run, f"{f}/movie.mp4", *cache], 2,
             f"{f}/movie.mp4", "a folder named like an image or video file", kind=KIND),
        Case("library predict, out under a file", "call",
             _call("mer_keras.predict", lambda predict, c: predict(c / "filesystem/run", [c / "images/good.png"],
                                                                    out=str(c / "filesystem/afile/p.json"))),
             OptionError, f"{f}/afile/p.json", "is a file, not a folder", kind=KIND),
        # spot, merge, ensemble, data prepare
        Case("spot --out that is a file", "cli", ["spot", "--out", f"{f}/afile", *cache], 2, f"--out {f}/afile",
             file_not_folder, kind=KIND),
        Case("spot --out a finished run folder", "cli", ["spot", "--out", run, *cache], 2, f"--out {run}",
             "holds the results of another command", kind=KIND,
             check=_both(_unchanged("results.json"), _run_untouched())),
        Case("spot --cache-dir that is a loop of symbolic links", "cli",
             ["spot", "--out", f"{f}/spot_out", "--cache-dir", f"{f}/loop_a"], 2, f"--cache-dir {f}/loop_a", loop,
             kind=KIND, check=_absent("filesystem/spot_out")),
        Case("merge --out that is a file", "cli", ["merge", run, "--out", f"{f}/afile"], 2, f"--out {f}/afile",
             file_not_folder, kind=KIND),
        Case("ensemble --out under a file (not writable)", "cli", ["ensemble", run, "{c}/runs/good", "--out",
                                                                   f"{f}/afile/ens"], 2,
             f"--out {f}/afile/ens", "is a file, not a folder", kind=KIND),
        Case("data prepare --cache-dir that is a file", "cli",
             ["data", "prepare", "manifest", "--root", "{c}/manifests/rows.csv", "--cache-dir", f"{f}/afile"], 2,
             f"--cache-dir {f}/afile", file_not_folder, kind=KIND),
        Case("data prepare --cache-dir under a link to nothing", "cli",
             ["data", "prepare", "casme2", "--root", "{c}/db/rows", "--cache-dir", f"{f}/dangling/cache"], 2,
             f"--cache-dir {f}/dangling/cache", "is a symbolic link to nothing", kind=KIND,
             check=_absent("filesystem/nowhere")),
        Case("cache folder that is a file", "call",
             _call("mer_keras.preprocess.cache.default_cache_dir", lambda f_, c: f_(c / "filesystem/afile")),
             OptionError, f"{f}/afile", file_not_folder, kind=KIND),
        # the edge runner and benchmark
        Case("--annotate an existing folder", "edge.run", [*edge, "--annotate", run], 2, run,
             "cannot write a video there (a folder", kind=KIND, check=_run_untouched()),
        Case("--annotate the video being read", "edge.run",
             ["--model", "{c}/models/good.tflite", "--video", f"{f}/input.mp4", "--annotate", f"{f}/input.mp4"], 2,
             f"{f}/input.mp4", "it is the --video being read", kind=KIND, check=_unchanged("input.mp4")),
        Case("--annotate under a file (not writable)", "edge.run", [*edge, "--annotate", f"{f}/afile/out.mp4"], 2,
             f"{f}/afile/out.mp4", "/filesystem/afile is a file", kind=KIND),
        Case("--annotate a run's results.json", "edge.run", [*edge, "--annotate", f"{run}/results.json"], 2,
             f"{run}/results.json", "expected a video file name", kind=KIND, check=_unchanged("results.json")),
        Case("--annotate a loop of symbolic links", "edge.run", [*edge, "--annotate", f"{f}/loop_b"], 2, f"{f}/loop_b",
             "a symbolic link to nothing, or a loop of links", kind=KIND),
        Case("--model a loop of symbolic links", "edge.run", ["--model", f"{f}/loop_a", "--video", "{c}/videos/good.mp4"],
             2, f"{f}/loop_a", "a symbolic link to nothing (or a loop of links); expected a .tflite", kind=KIND),
        Case("--video a loop of symbolic links", "edge.run", ["--model", "{c}/models/good.tflite", "--video",
                                                              f"{f}/loop_a"], 2,
             f"{f}/loop_a", "a symbolic link to nothing (or a loop of links), not a video file", kind=KIND),
        Case("--video a folder named like a video", "edge.run", ["--model", "{c}/models/good.tflite", "--video",
                                                                 f"{f}/movie.mp4"], 2,
             f"{f}/movie.mp4", "a folder named like a video file", kind=KIND),
        Case("folder named like a video to benchmark", "edge.bench", ["--model", "{c}/models/good.tflite", "--video",
                                                                      f"{f}/movie.mp4"], 2,
             f"{f}/movie.mp4", "a folder named like a video file", kind=KIND),
        Case("loop of symbolic links as the model to benchmark", "edge.bench",
             ["--model", f"{f}/loop_b", "--video", "{c}/videos/good.mp4"], 2, f"{f}/loop_b",
             "a symbolic link to nothing", kind=KIND),
    ]
