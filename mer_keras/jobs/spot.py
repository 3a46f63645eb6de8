"""``mer-keras spot``: find micro- and macro-expressions in long videos, score them as MEGC does,
and (with ``--model``) recognise the micro-expressions found.

Steps: check the output folder -> load the long videos and their annotations -> per video, spot
(:class:`mer_keras.runtime.spotting.Spotter`, the same stream the edge runner uses) and write
``videos/<name>.json`` atomically (a killed run resumes: videos already spotted with the same
configuration are read back) -> MEGC scores (IoU >= 0.5; micro, macro, overall) beside a random
baseline that places the same number of intervals of the same lengths -> with a model: the class
of every spotted micro-expression, and for annotated sets the recognition at the true intervals
beside the recognition at the spotted intervals that match them -> ``intervals.csv``,
``results.json``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from mer_keras.errors import OptionError
from mer_keras.jobs.schema import option
from mer_keras.jobs.spot_steps import recognise, spot_config, spot_video
from mer_keras.jobs.trained import open_model
from mer_keras.names import SPOT_DATASETS

#: Version of the per-video spotting files (a resumed run re-spots videos of another version).
SPOT_FILE_VERSION = 1


@dataclass
class SpotOptions:
    """Options of ``mer-keras spot``."""

    data: str = option("synthetic", "Long videos to spot: the embedded synthetic set, CAS(ME)^2 (casme_sq) or SAMM "
                                    "long videos (samm).", choices=lambda: SPOT_DATASETS)
    root: str | None = option(None, "The database's folder (casme_sq, samm).")
    model: str | None = option(None, "Recognise each spotted micro-expression with this model (run folder, released "
                                     "folder, .keras or .tflite).")
    out: str | None = option(None, "Output folder (default runs/spot-<data>-<time>); an existing one resumes.")
    videos: int = option(6, "Synthetic: number of long videos.", min=1)
    seconds: float = option(20.0, "Synthetic: length of each video, s.", min=6, max=600)
    fps: float = option(200.0, "Synthetic: frame rate (200 as SAMM, 30 as CAS(ME)^2).", min=10, max=1000)
    seed: int = option(0, "Synthetic: seed of the videos (the defaults were chosen on seed 100).", min=0,
                       max=2 ** 32 - 1)
    micro_k: float | None = option(None, "Reference distance of the micro scale, s (default 0.3).", above=0)
    macro_k: float | None = option(None, "Reference distance of the macro scale, s (default 1.0).", above=0)
    min_snr: float | None = option(None, "Peak over the motion near its neutral references (default 5).", above=0)
    method: str = option("analytic", "How a candidate is kept: the analytic rules (--min-snr), or the learned "
                                     "second stage (fitted on development videos; docs/SPOTTING.md).",
                         choices=lambda: ("analytic", "learned"))
    learned_model: str | None = option(None, "With --method learned: a second stage written by "
                                             "tools/fit_spotter.py instead of the packaged one.")
    limit: int | None = option(None, "Spot only the first N videos (a quick look).", min=1)
    draws: int = option(200, "Draws of the random baseline.", min=1)
    strict: bool = option(False, "Stop at the first bad annotation row instead of skipping it.")
    cache_dir: str | None = option(None, "Cache folder (default $MER_CACHE_DIR or ~/.cache/mer_keras).")


def _video_file(out: Path, video) -> Path:
    return out / "videos" / (video.name.replace("/", "__") + ".json")


def spotted_before(out: Path, setup: dict) -> dict[Path, dict]:
    """The videos an earlier run of the same configuration spotted into ``out`` (a resumed run reads them back).

    Returns:
        {``out/videos/<name>.json``: its contents}; empty for a new folder.
    Raises:
        OptionError: ``out`` holds the results of another command (a training run, an
            evaluation: they would be replaced), or videos spotted with another configuration.
        DataError: a per-video file that is not this command's JSON object (named).
    """
    from mer_keras.errors import DataError

    if (out / "config.json").is_file() or (out / "metadata.json").is_file() or (
            (out / "results.json").is_file() and not (out / "videos").is_dir()):
        raise OptionError(f"--out {out}: holds the results of another command (its results.json would be replaced); "
                          "give a new folder")
    done = {}
    for path in sorted((out / "videos").glob("*.json")) if (out / "videos").is_dir() else []:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: not a readable spotting file ({exc}); delete it to spot that video "
                            "again") from None
        if not isinstance(data, dict) or not {"setup", "intervals", "frames", "seconds"} <= set(data):
            raise DataError(f"{path}: not a spotting file (expected a JSON object with setup, intervals, frames "
                            "and seconds); delete it to spot that video again")
        if data.get("setup") != setup:
            raise OptionError(f"{out}: spotted with another configuration ({path}); give a new --out")
        done[path] = data
    return done


def run_spot(opts: SpotOptions, console=None) -> Path:
    """Spot every video of ``opts.data``; write ``intervals.csv`` and ``results.json``; return the folder.

    Raises:
        OptionError: a bad option or output folder, or an output folder made with another
            configuration. MissingFileError, DataError, ModelFileError: unusable data or model (named).
    """
    import pandas as pd
    from rich.console import Console

    from mer_keras import atomic
    from mer_keras.data.spotting import load_spotting, spot_dataset
    from mer_keras.data.synthetic.long import LongVideoConfig
    from mer_keras.jobs.outputs import check_outputs
    from mer_keras.jobs.schema import validate
    from mer_keras.runtime.intervals import Interval, random_baseline, score_videos

    validate(opts)  # the same checks as the command line, also for the Python API
    console = console or Console()
    generated = spot_dataset(opts.data).generated
    if not generated and opts.root is None:
        raise OptionError(f"--data {opts.data} needs --root (the database's folder)")
    cfg = spot_config(micro_k=opts.micro_k, macro_k=opts.macro_k, min_snr=opts.min_snr, method=opts.method,
                      learned_model=opts.learned_model)
    out = Path(opts.out) if opts.out else Path("runs") / f"spot-{opts.data}-{time.strftime('%Y%m%d-%H%M%S')}"
    check_outputs(out, opts.cache_dir)
    model_path = meta = None
    if opts.model:
        from mer_keras.jobs.trained import find_model

        model_path, meta = find_model(opts.model)
    synthetic = LongVideoConfig(videos=opts.videos, seconds=opts.seconds, fps=opts.fps, seed=opts.seed) \
        if generated else None
    from dataclasses import asdict

    setup = json.loads(json.dumps({"data": opts.data, "root": str(Path(opts.root).resolve()) if opts.root else None,
                                   "synthetic": asdict(synthetic) if synthetic else None, "spotting": cfg.to_dict(),
                                   "version": SPOT_FILE_VERSION}))  # as read back from JSON (lists, not tuples)
    done_before = spotted_before(out, setup)  # a folder that is not this spotting's fails before any work
    with console.status(f"loading the long videos of {opts.data}"):
        videos = load_spotting(opts.data, opts.root, synthetic=synthetic, cache_dir=opts.cache_dir, strict=opts.strict)
    videos = videos[:opts.limit] if opts.limit else videos
    (out / "videos").mkdir(parents=True, exist_ok=True)
    per_video = spot_videos(videos, cfg, setup, out, done_before, console)
    spotted = {name: [Interval(**d) for d in v["intervals"]] for name, v in per_video.items()}
    annotated = any(v.truth for v in videos)
    scores = score_videos([(spotted[v.name], v.truth) for v in videos]) if annotated else None
    baseline = random_baseline([(spotted[v.name], v.truth, len(v.frames)) for v in videos], opts.draws) \
        if annotated else None

    recognition, probs_of = recognise_spotted(model_path, meta, videos, spotted, annotated, console) \
        if model_path is not None else (None, {})
    rows = interval_rows(videos, spotted, probs_of, meta, annotated)
    table = pd.DataFrame(rows, columns=None if rows else ["video", "type", "onset", "apex", "offset"])
    with atomic.atomic_path(out / "intervals.csv") as tmp:
        table.to_csv(tmp, index=False)
    frames = sum(v["frames"] for v in per_video.values())
    seconds = sum(v["seconds"] for v in per_video.values())
    results = {"setup": setup, "videos": len(videos), "frames": frames,
               "annotated": int(sum(len(v.truth) for v in videos)),
               "skipped_rows": int(sum(v.skipped for v in videos)),
               "spotted": {k: int(sum(i.type == k for s in spotted.values() for i in s)) for k in ("micro", "macro")},
               "scores": scores, "random_baseline": baseline, "recognition": recognition,
               "spotting_frames_per_second": round(frames / seconds, 1) if seconds else None}
    if scores is not None and recognition is not None:  # the field's spot-then-recognise task (MEGC 2023-2025)
        from mer_keras.runtime.intervals import spot_then_recognise

        tp = recognition.get("at_spotted_intervals") or {}
        results["str"] = spot_then_recognise(scores["micro"], tp.get("uf1"), tp.get("uar"), tp.get("clips", 0))
    atomic.write_json(out / "results.json", results)
    _report(console, out, results)
    return out


def spot_videos(videos, cfg, setup: dict, out: Path, done_before: dict, console) -> dict[str, dict]:
    """Step *spot*: every video spotted (one ``videos/<name>.json`` each, written as it ends; those
    of an interrupted run with the same setup reused).

    Returns:
        {video name: its spotting file's dict (``intervals``, ``frames``, ``seconds``, ...)}.
    """
    from rich.progress import Progress

    from mer_keras import atomic

    per_video = {}
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("spotting", total=sum(len(v.frames) for v in videos))
        for video in videos:
            path = _video_file(out, video)
            if path in done_before:
                per_video[video.name] = done_before[path]
                bar.advance(task, len(video.frames))
                continue
            found, info = spot_video(video, cfg)
            per_video[video.name] = {"setup": setup, "video": video.name, **info,
                                     "intervals": [i.to_dict() for i in found]}
            atomic.write_json(path, per_video[video.name])
            bar.advance(task, len(video.frames))
    return per_video


def interval_rows(videos, spotted: dict, probs_of: dict, meta: dict | None, annotated: bool) -> list[dict]:
    """The rows of ``intervals.csv``: each spotted interval (frame numbers of the video), its matched
    ground truth and IoU when annotated, and the recognised class with its probabilities for the
    micro-expressions a model classified."""
    import numpy as np

    from mer_keras.runtime.intervals import count_video

    rows = []
    for video in videos:
        matches = {}
        for kind, (_, pairs) in count_video(spotted[video.name], video.truth).items():
            matches.update({i: (j, v) for i, j, v in pairs})
        micro_index = [k for k, i in enumerate(spotted[video.name]) if i.type == "micro"]
        for k, it in enumerate(spotted[video.name]):
            row = {"video": video.name, **video.place(it)}
            if annotated:
                j = matches.get(k)
                row.update({"true_onset": video.number(video.truth[j[0]].onset) if j else None,
                            "true_offset": video.number(video.truth[j[0]].offset) if j else None,
                            "iou": round(j[1], 3) if j else None})
            if video.name in probs_of and k in micro_index:
                p = probs_of[video.name][micro_index.index(k)]
                row["predicted"] = meta["classes"][int(np.argmax(p))]
                row.update({f"p_{c}": round(float(v), 4) for c, v in zip(meta["classes"], p)})
            rows.append(row)
    return rows


class LazyModel:
    """A model file opened (and checked against its metadata.json) on the first prediction only,
    then kept for every video: a spotting run that finds nothing never opens it."""

    def __init__(self, path: Path):
        self.path, self._model = path, None

    def predict(self, x):
        if self._model is None:
            self._model = open_model(self.path)
        return self._model.predict(x)


def recognise_spotted(model_path: Path, meta: dict, videos, spotted: dict, annotated: bool, console):
    """Step *recognise*: the spotted micro-expressions of every video classified by the model; with
    annotations, also recognition at the true intervals and at the spotted ones that match them.

    Returns:
        (results.json's ``recognition`` entry, {video name: (n_micro, K) probabilities}).
    """
    classes = list(meta["classes"])
    trained = LazyModel(model_path)
    probs_of = {}
    with console.status("recognising the spotted micro-expressions"):
        for video in videos:
            micro = [i for i in spotted[video.name] if i.type == "micro"]
            probs_of[video.name] = recognise(trained.predict, meta, video, micro)
    recognition = {"model": str(model_path), "classes": classes,
                   "spotted_micro": int(sum(len(p) for p in probs_of.values()))}
    if annotated:
        recognition.update(_recognition_vs_truth(trained, meta, videos, spotted, probs_of, classes))
    return recognition, probs_of


def _recognition_vs_truth(trained, meta, videos, spotted, probs_of, classes) -> dict:
    """Recognition of annotated micro-expressions: at their true intervals, and at the spotted
    intervals that match them (IoU >= 0.5), on the same clips; labels outside the model's classes
    are left out and counted."""
    from mer_keras.metrics import compute_metrics
    from mer_keras.runtime.intervals import count_video

    y_true, p_true, y_spot, p_spot, outside = [], [], [], [], 0  # class indices and probability rows
    for video in videos:
        truth = [t for t in video.truth if t.type == "micro"]
        known = [t for t in truth if t.label in classes]
        outside += len(truth) - len(known)
        if known:
            p = recognise(trained.predict, meta, video, known)
            y_true += [classes.index(t.label) for t in known]
            p_true += list(p)
        micro_spotted = [i for i in spotted[video.name] if i.type == "micro"]
        _, pairs = count_video(spotted[video.name], video.truth)["micro"]
        for i, j, _ in pairs:
            t = video.truth[j]
            if t.label in classes:
                y_spot.append(classes.index(t.label))
                p_spot.append(probs_of[video.name][micro_spotted.index(spotted[video.name][i])])
    out = {"labels_outside_classes": outside}
    if y_true:
        out["at_true_intervals"] = {"clips": len(y_true), **_metrics(compute_metrics, y_true, p_true, classes)}
    if y_spot:
        out["at_spotted_intervals"] = {"clips": len(y_spot), **_metrics(compute_metrics, y_spot, p_spot, classes)}
    out["note"] = ("at_spotted_intervals covers the true micro-expressions the spotter found (IoU >= 0.5), "
                   "classified from the spotted onset, apex and offset")
    return out


def _metrics(compute_metrics, y, p, classes) -> dict:
    import numpy as np

    m = compute_metrics(y, list(np.argmax(np.stack(p), 1)), classes)
    return {k: m[k] for k in ("accuracy", "uf1", "uar") if k in m}


def _report(console, out: Path, r: dict) -> None:
    from rich.table import Table

    if r["scores"]:
        t = Table(title=f"spotting on {r['setup']['data']}: {r['videos']} videos, {r['annotated']} annotated "
                        f"expressions (IoU >= 0.5)")
        for col in ("", "spotted", "TP", "precision", "recall", "F1", "random F1"):
            t.add_column(col, justify="left" if not col else "right")
        for k in ("micro", "macro", "overall"):
            s, b = r["scores"][k], r["random_baseline"][k]
            t.add_row(k, str(s["spotted"]), str(s["tp"]), f"{s['precision']:.3f}", f"{s['recall']:.3f}",
                      f"{s['f1']:.3f}", f"{b['f1_mean']:.3f}")
        console.print(t)
    else:
        console.print(f"spotted {r['spotted']['micro']} micro- and {r['spotted']['macro']} macro-expressions "
                      "(the videos carry no annotation to score against)")
    rec = r.get("recognition") or {}
    for key in ("at_true_intervals", "at_spotted_intervals"):
        if key in rec:
            m = rec[key]
            console.print(f"recognition {key.replace('_', ' ')}: {m['clips']} clips, accuracy {m['accuracy']:.3f}, "
                          f"UF1 {m['uf1']:.3f}, UAR {m['uar']:.3f}")
    if r.get("str"):
        s = r["str"]
        console.print(f"spot-then-recognise (MEGC STR): micro-expression spotting F1 {s['spotting_f1']:.3f} x "
                      f"recognition UF1 of the {s['recognised']} true positives {s['recognition_uf1']:.3f} = "
                      f"STRS {s['strs']:.3f}", soft_wrap=True)
    if r["spotting_frames_per_second"]:
        console.print(f"spotting ran at {r['spotting_frames_per_second']} frames/s (reading frames included)")
    console.print(f"written to {out}", soft_wrap=True)
