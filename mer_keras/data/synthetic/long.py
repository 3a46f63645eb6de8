"""Long synthetic videos for spotting: micro- and macro-expressions at known intervals among distractors.

A long video is one pseudo-subject (:func:`~mer_keras.data.synthetic.faces.make_subjects`, with
identities drawn from a seed of their own, so they are not the faces of the default training set)
filmed for ``seconds`` at ``fps``. It holds, at known frames:

* **micro-expressions**: the AUs of a class (:data:`mer_keras.facs.AU_COMBINATIONS`), with the
  amplitude and duration of the default set (0.035-0.08 inter-ocular distances at the apex,
  0.18-0.45 s onset to offset), a smooth rise to the apex and fall to the offset;
* **macro-expressions**: the same AUs, 0.15-0.35 IOD and 0.6-2.0 s (longer than the 0.5 s bound
  of micro-expressions that MEGC uses);

and, as distractors that are not to be spotted: neutral stretches, blinks (AU45, 0.1-0.3 s, about
one every 4 s, larger than a micro-expression), head movements (translation of 2-8 px and roll of
1-4 degrees over 0.3-1.0 s, the head staying at its new pose), slow head drift and jitter,
illumination changes (gain steps of 6-15 % over 0.5-2 s) with flicker, and sensor noise. Every
frame carries the subject's resting face (see :func:`~mer_keras.data.synthetic.render.render_clip`).

Events never overlap and keep 0.6 s apart and 1 s from either end of the video; blinks avoid the
micro-expressions (a blink during a micro-expression would be part of it). Ground truth is written
as MEGC annotates the long videos of CAS(ME)^2 and SAMM: onset, apex and offset frame per event,
with its type (micro / macro), its class and its AUs.

Layout (:func:`generate_long`)::

    <root>/videos.json            config, frame rate and frame count of each video
    <root>/spotting.csv           Video, Subject, Onset, Apex, Offset (frame numbers, 1 = img1.jpg),
                                  Type, Emotion, Action Units
    <root>/distractors.csv        Video, Kind (blink / head / light), Start, End: what is NOT an event
    <root>/v01/img1.jpg ...       frames, JPEG quality 95
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from mer_keras.data.synthetic.config import (
    CLASS_PROBABILITIES,
    CLASSES,
    GENERATOR_VERSION,
    MACRO_EXPRESSION,
    MAX_SEED,
    SyntheticConfig,
    check_number,
    check_range,
    check_whole,
)
from mer_keras.data.synthetic.faces import PseudoSubject, load_face_photos, make_subjects
from mer_keras.data.synthetic.mesh import face_axes
from mer_keras.data.synthetic.render import _smoothstep
from mer_keras.data.synthetic.warping import AU_MOTION, dense_field, landmark_displacements, warp
from mer_keras.errors import OptionError
from mer_keras.facs import AU_COMBINATIONS
from mer_keras.preprocess import portable
from mer_keras.preprocess.cache import default_cache_dir

#: Added to ``seed`` for the identities of the long videos: other faces than the training set's.
SUBJECT_SEED_OFFSET = 10_000
#: Version of the long-video output (part of the cache key).
LONG_VERSION = 1
#: Columns of ``spotting.csv``.
SPOTTING_COLUMNS = ["Video", "Subject", "Onset", "Apex", "Offset", "Type", "Emotion", "Action Units", "AmplitudeIOD"]
#: Largest number and length of long videos (beyond them a value is a typo that would fill the disk).
MAX_LONG_VIDEOS = 1_000
MAX_LONG_SECONDS = 600


@dataclass(frozen=True)
class LongVideoConfig:
    """Parameters of the long synthetic videos (units as stated).

    Attributes:
        videos: number of long videos (one pseudo-subject each), >= 1.
        seconds: length of each video, s (>= 6).
        fps: frame rate, frames per second (200 as SAMM's camera, 30 as CAS(ME)^2's).
        seed: master seed; the output is a pure function of the config and the photos.
        frame_size: side of the square frame, px.
        micro, macro: (min, max) number of micro- and macro-expressions per video.
        micro_amplitude, macro_amplitude: (min, max) apex displacement of the strongest landmark, IOD.
        micro_duration, macro_duration: (min, max) onset-to-offset duration, s.
        blink_rate: blinks per second (Poisson). head_moves, light_changes: per 10 s (Poisson).
        noise_sigma: (min, max) std of sensor noise, 8-bit grey levels.
        jitter: std of the per-frame head-translation random walk at 100 fps, px (scaled to fps).
        jpeg_quality: JPEG quality of the stored frames.
    """

    videos: int = 6
    seconds: float = 20.0
    fps: float = 200.0
    seed: int = 0
    frame_size: int = 192
    micro: tuple[int, int] = (3, 5)
    macro: tuple[int, int] = (1, 3)
    micro_amplitude: tuple[float, float] = SyntheticConfig.amplitude    # the default set's micro-expressions
    macro_amplitude: tuple[float, float] = MACRO_EXPRESSION["amplitude"]
    micro_duration: tuple[float, float] = SyntheticConfig.duration
    macro_duration: tuple[float, float] = (0.6, 2.0)  # longer than MEGC's 0.5 s bound of micro-expressions
    blink_rate: float = 0.25
    head_moves: float = 2.0
    light_changes: float = 1.0
    noise_sigma: tuple[float, float] = SyntheticConfig.noise_sigma
    jitter: float = 0.05
    jpeg_quality: int = SyntheticConfig.jpeg_quality

    def __post_init__(self) -> None:
        what = "long videos"
        check_whole(what, "videos", self.videos, 1, MAX_LONG_VIDEOS)
        if isinstance(self.seconds, bool) or not isinstance(self.seconds, (int, float)) or \
                not 6 <= self.seconds <= MAX_LONG_SECONDS:
            raise OptionError(f"{what}: seconds {self.seconds!r}: a long video lasts from 6 to {MAX_LONG_SECONDS} s")
        if isinstance(self.fps, bool) or not isinstance(self.fps, (int, float)) or not 10 <= self.fps <= 1000:
            raise OptionError(f"{what}: fps {self.fps!r}: frame rate must be within 10..1000 fps")
        check_whole(what, "seed", self.seed, 0, MAX_SEED)
        check_whole(what, "frame_size", self.frame_size, 64, 2_048)
        check_whole(what, "jpeg_quality", self.jpeg_quality, 1, 100)
        for name in ("micro", "macro"):
            check_range(what, name, getattr(self, name), whole=True)
        for name in ("micro_amplitude", "macro_amplitude", "noise_sigma"):
            check_range(what, name, getattr(self, name))
        for name in ("micro_duration", "macro_duration"):
            check_range(what, name, getattr(self, name), positive=True)
        for name in ("blink_rate", "head_moves", "light_changes", "jitter"):
            check_number(what, name, getattr(self, name), lo=0)


@dataclass
class _Event:
    kind: str           # micro | macro | blink
    start: int          # onset frame (0-based)
    end: int            # offset frame (0-based, included)
    apex: int = -1
    label: str = ""
    aus: tuple = ()
    amplitude: float = 0.0


def _place(lengths: list[int], n: int, margin: int, gap: int, rng: np.random.Generator) -> list[int] | None:
    """Start frames for events of ``lengths`` in a video of ``n`` frames, in the given order, apart by >= ``gap``."""
    free = n - 2 * margin - sum(lengths) - gap * (len(lengths) - 1)
    if free < 0:
        return None
    cuts = np.sort(rng.uniform(0, free, size=len(lengths)))
    starts, at = [], margin
    for length, cut, prev in zip(lengths, cuts, np.concatenate([[0.0], cuts[:-1]])):
        at += int(cut - prev)
        starts.append(at)
        at += length + gap
    return starts


def plan_video(cfg: LongVideoConfig, rng: np.random.Generator) -> tuple[list[_Event], dict]:
    """The events and distractors of one video (frame indices 0-based), before rendering."""
    n = int(round(cfg.seconds * cfg.fps))
    kinds = ["micro"] * int(rng.integers(cfg.micro[0], cfg.micro[1] + 1)) + \
            ["macro"] * int(rng.integers(cfg.macro[0], cfg.macro[1] + 1))
    rng.shuffle(kinds)
    events = []
    for kind in kinds:
        lo, hi = cfg.micro_duration if kind == "micro" else cfg.macro_duration
        length = max(4, int(round(rng.uniform(lo, hi) * cfg.fps)))
        label = str(rng.choice(CLASSES, p=CLASS_PROBABILITIES))
        aus = AU_COMBINATIONS[label][int(rng.integers(len(AU_COMBINATIONS[label])))]
        amp = rng.uniform(*(cfg.micro_amplitude if kind == "micro" else cfg.macro_amplitude))
        events.append(_Event(kind, 0, length - 1, label=label, aus=tuple(aus), amplitude=float(amp)))
    while True:  # drop events that do not fit (a short video), macro-expressions first
        starts = _place([e.end + 1 for e in events], n, int(cfg.fps), int(0.6 * cfg.fps), rng)
        if starts is not None or not events:
            break
        events.pop(next((i for i, e in enumerate(events) if e.kind == "macro"), len(events) - 1))
    for e, s in zip(events, starts or []):
        length = e.end + 1
        e.start, e.end = s, s + length - 1
        e.apex = e.start + int(round(rng.uniform(0.3, 0.6) * (length - 1)))
    micro = [(e.start, e.end) for e in events if e.kind == "micro"]
    blinks = []
    for _ in range(int(rng.poisson(cfg.blink_rate * cfg.seconds))):
        length = max(3, int(round(rng.uniform(0.1, 0.3) * cfg.fps)))
        for _try in range(20):
            s = int(rng.integers(0, n - length))
            if all(s + length <= a or s > b for a, b in micro):
                blinks.append(_Event("blink", s, s + length - 1, amplitude=float(rng.uniform(0.08, 0.14))))
                break
    heads = []
    for _ in range(int(rng.poisson(cfg.head_moves * cfg.seconds / 10))):
        length = max(3, int(round(rng.uniform(0.3, 1.0) * cfg.fps)))
        s = int(rng.integers(0, n - length))
        angle = rng.uniform(0, 2 * np.pi)
        heads.append({"start": s, "end": s + length - 1,
                      "shift": (rng.uniform(2, 8) * np.array([math.cos(angle), math.sin(angle)])).tolist(),
                      "roll": float(rng.uniform(1, 4) * rng.choice([-1, 1]))})
    lights = []
    for _ in range(int(rng.poisson(cfg.light_changes * cfg.seconds / 10))):
        length = max(3, int(round(rng.uniform(0.5, 2.0) * cfg.fps)))
        s = int(rng.integers(0, n - length))
        lights.append({"start": s, "end": s + length - 1, "gain": float(rng.uniform(0.06, 0.15) * rng.choice([-1, 1]))})
    return events + blinks, {"frames": n, "head": heads, "light": lights}


def render_long_video(subject: PseudoSubject, cfg: LongVideoConfig, rng: np.random.Generator):
    """Render one long video of ``subject``.

    Returns:
        (frames, events, distractors): a generator of ``n`` (S, S, 3) uint8 RGB frames; the
        micro- and macro-expressions (kind, start, apex, end 0-based frames, label, AUs);
        {"frames": n, "head": [...], "light": [...], "blink": [...]} with 0-based frames.
    """
    events, plan = plan_video(cfg, rng)
    n, lm, shape = plan["frames"], subject.landmarks, subject.image.shape[:2]
    iod = face_axes(lm)[3]
    t = np.arange(n, dtype=np.float64)
    layers = []  # (field, weight per frame, first, last frame where the weight is not 0)
    for e in events:
        if e.kind == "blink":
            disp = landmark_displacements(lm, {"AU45": e.amplitude})
            weight = portable.sin(np.pi * np.clip((t - e.start) / max(1, e.end - e.start), 0, 1)) ** 2
        else:
            disp = landmark_displacements(lm, {au: rng.uniform(0.6, 1.0) for au in e.aus})
            disp *= e.amplitude * iod / np.hypot(disp[:, 0], disp[:, 1]).max()
            weight = np.where(t <= e.apex, _smoothstep((t - e.start) / max(1, e.apex - e.start)),
                              _smoothstep((e.end - t) / max(1, e.end - e.apex)))
        layers.append((dense_field(lm, disp, shape), weight, e.start, e.end))
    rest = landmark_displacements(lm, {au: rng.normal() for au in AU_MOTION if au != "AU45"})
    rest *= rng.uniform(0.04, 0.1) * iod / max(1e-6, np.hypot(rest[:, 0], rest[:, 1]).max())
    rest_field = dense_field(lm, rest, shape)

    scale = cfg.fps / 100.0  # the random walk's per-frame std is set at 100 fps
    jitter = np.cumsum(rng.normal(0, cfg.jitter / np.sqrt(scale), size=(n, 2)), axis=0)
    jitter += rng.uniform(-2, 2, size=2) * t[:, None] / n  # slow drift over the video
    shift, roll = np.zeros((n, 2)), np.zeros(n)
    for h in plan["head"]:
        w = _smoothstep((t - h["start"]) / max(1, h["end"] - h["start"]))
        shift += w[:, None] * np.asarray(h["shift"])
        roll += w * h["roll"]
    gain = 1 + 0.01 * portable.sin(2 * np.pi * rng.uniform(0.5, 3) * t / cfg.fps + rng.uniform(0, 2 * np.pi))
    for li in plan["light"]:
        gain += li["gain"] * _smoothstep((t - li["start"]) / max(1, li["end"] - li["start"]))
    sigma = rng.uniform(*cfg.noise_sigma)
    centre = (shape[1] / 2, shape[0] / 2)
    noise_rng = np.random.default_rng(rng.integers(2**32))

    def frames():
        for i in range(n):
            field = rest_field.copy()
            for f, w, a, b in layers:
                if a <= i <= b:
                    field += f * float(w[i])
            m = cv2.getRotationMatrix2D(centre, float(roll[i]), 1.0)
            m[:, 2] += jitter[i] + shift[i]
            img = warp(subject.image, field, m).astype(np.float32) * float(gain[i])
            img += noise_rng.normal(0, sigma, img.shape).astype(np.float32)
            yield np.clip(img + 0.5, 0, 255).astype(np.uint8)

    expressions = [e for e in events if e.kind != "blink"]
    plan["blink"] = [{"start": e.start, "end": e.end} for e in events if e.kind == "blink"]
    return frames(), expressions, plan


def long_dataset_dir(cfg: LongVideoConfig, photos, cache_dir: Path | None = None) -> Path:
    """Cache folder of a long-video config (a hash of the versions, the config and the photos)."""
    h = hashlib.sha256(json.dumps({"v": GENERATOR_VERSION, "long": LONG_VERSION, **asdict(cfg)},
                                  sort_keys=True).encode())
    for name, img in photos:
        h.update(name.encode())
        h.update(hashlib.sha256(np.ascontiguousarray(img)).digest())
    return default_cache_dir(cache_dir) / "synthetic_long" / (
        f"s{cfg.seed}-{cfg.videos}x{cfg.seconds:g}s-{cfg.fps:g}fps-{h.hexdigest()[:12]}")


def generate_long(cfg: LongVideoConfig, out: Path, photos, progress=None) -> Path:
    """Render every long video into ``out`` atomically (a temporary folder renamed at the end).

    Args:
        progress: optional callable(done, total) called after each video.
    Returns:
        ``out`` (layout in the module docstring).
    Raises:
        DataError: a face photo without a detectable face.
    """
    import pandas as pd

    from mer_keras.preprocess.face import FaceMeshLandmarker

    tmp = out.with_name(out.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        landmarker = FaceMeshLandmarker()
        try:
            subjects = make_subjects(photos, cfg.videos, cfg.frame_size, cfg.seed + SUBJECT_SEED_OFFSET, landmarker)
        finally:
            landmarker.close()
        rows, others, videos = [], [], {}
        for v, subject in enumerate(subjects):
            name = f"v{v + 1:02d}"
            frames, events, plan = render_long_video(subject, cfg, np.random.default_rng([cfg.seed, 7, v]))
            (tmp / name).mkdir()
            for k, frame in enumerate(frames):
                cv2.imwrite(str(tmp / name / f"img{k + 1}.jpg"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
            videos[name] = {"subject": subject.name, "photo": subject.photo, "frames": plan["frames"]}
            rows += [{"Video": name, "Subject": subject.name, "Onset": e.start + 1, "Apex": e.apex + 1,
                      "Offset": e.end + 1, "Type": e.kind, "Emotion": e.label, "Action Units": "+".join(
                          a[2:] for a in e.aus), "AmplitudeIOD": round(e.amplitude, 5)} for e in events]
            others += [{"Video": name, "Kind": kind, "Start": d["start"] + 1, "End": d["end"] + 1}
                       for kind, key in (("blink", "blink"), ("head", "head"), ("light", "light"))
                       for d in plan[key]]
            if progress:
                progress(v + 1, len(subjects))
        pd.DataFrame(rows, columns=SPOTTING_COLUMNS).to_csv(tmp / "spotting.csv", index=False)
        pd.DataFrame(others, columns=["Video", "Kind", "Start", "End"]).to_csv(tmp / "distractors.csv", index=False)
        (tmp / "videos.json").write_text(json.dumps({"config": asdict(cfg), "fps": cfg.fps, "videos": videos},
                                                    indent=1))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if (out / "spotting.csv").exists():  # another process made the same set first
        shutil.rmtree(tmp)
        return out
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, out)
    return out


def long_videos(cfg: LongVideoConfig | None = None, faces_dir=None, cache_dir=None, progress=None) -> Path:
    """The folder of the long synthetic videos of ``cfg``, rendered on first use and then cached."""
    cfg = cfg or LongVideoConfig()
    photos = load_face_photos(faces_dir)
    out = long_dataset_dir(cfg, photos, Path(cache_dir) if cache_dir else None)
    if not (out / "spotting.csv").exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        generate_long(cfg, out, photos, progress)
    return out
