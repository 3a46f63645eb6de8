"""The generated set on disk: its cache folder, atomic generation, and loading it as samples."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, replace
from pathlib import Path

import cv2
import numpy as np

from mer_keras.data.records import Sample
from mer_keras.data.sheets import short_reason
from mer_keras.data.synthetic.config import CLASSES, GENERATOR_VERSION, SyntheticConfig
from mer_keras.data.synthetic.faces import load_face_photos, make_subjects
from mer_keras.data.synthetic.render import render_clip
from mer_keras.errors import DataError, MissingFileError, OptionError
from mer_keras.preprocess.cache import default_cache_dir
from mer_keras.preprocess.face import FaceMeshLandmarker


def dataset_dir(cfg: SyntheticConfig, photos: list[tuple[str, np.ndarray]], cache_dir: Path | None = None) -> Path:
    """Cache folder of a config: a hash of the generator version, the config and the photos."""
    h = hashlib.sha256(json.dumps({"v": GENERATOR_VERSION, **cfg.key()}, sort_keys=True).encode())
    for name, img in photos:
        h.update(name.encode())
        h.update(hashlib.sha256(np.ascontiguousarray(img)).digest())
    return default_cache_dir(cache_dir) / "synthetic" / (f"s{cfg.seed}-{cfg.subjects}x{cfg.clips_per_subject}-"
                                                         f"{h.hexdigest()[:12]}")


def generate(cfg: SyntheticConfig, out: Path, photos: list[tuple[str, np.ndarray]], progress=None) -> Path:
    """Render the whole set into ``out`` (atomically: a temporary folder renamed at the end).

    Processes generating the same set at once (the workers of a multi-worker run) each render into
    their own temporary folder; the first to finish publishes it and the others discard theirs.

    Args:
        progress: optional callable(done, total) called after each clip.
    Returns:
        ``out``, holding ``coding.csv``, ``subjects.json`` and ``subXX/clipYYY/img<N>.jpg``.
    Raises:
        OptionError: fewer than 2 subjects or no clip per subject.
        DataError: a face photo without a detectable face (see :func:`make_subjects`).
    """
    if cfg.subjects < 2 or cfg.clips_per_subject < 1:
        raise OptionError(f"need >= 2 subjects and >= 1 clip each, got {cfg.subjects} x {cfg.clips_per_subject}")
    tmp = out.with_name(out.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _render_all(cfg, tmp, photos, progress)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # never leave a half-made set in the cache
        raise
    if (out / "coding.csv").exists():  # another process (e.g. a second worker) finished the same set first:
        shutil.rmtree(tmp)              # keep its copy, which readers may already be using (same content)
        return out
    if out.exists():
        shutil.rmtree(out)  # an incomplete folder not made by generate()
    try:
        os.replace(tmp, out)
    except OSError:
        if not (out / "coding.csv").exists():
            raise
        shutil.rmtree(tmp)  # lost the race to another process between the check and the rename
    return out


def grayscale(frame: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W, 3) uint8 of equal channels, the ITU-R BT.601 luma
    (0.299 R + 0.587 G + 0.114 B) in integer arithmetic, rounded: the same on every CPU."""
    rgb = frame.astype(np.int32)
    luma = (rgb[..., 0] * 4899 + rgb[..., 1] * 9617 + rgb[..., 2] * 1868 + 8192) >> 14
    return np.repeat(luma.astype(np.uint8)[..., None], 3, axis=-1)


def _render_all(cfg: SyntheticConfig, tmp: Path, photos, progress) -> None:
    import pandas as pd

    landmarker = FaceMeshLandmarker()
    try:
        subjects = make_subjects(photos, cfg.subjects, cfg.frame_size, cfg.seed, landmarker)
    finally:
        landmarker.close()
    rows, total = [], cfg.subjects * cfg.clips_per_subject
    captures = [cfg.subject_capture(i) for i in range(len(subjects))]
    for s_idx, subject in enumerate(subjects):
        fps, gray = captures[s_idx]
        filmed = cfg if fps == cfg.fps else replace(cfg, fps=fps)
        for c in range(cfg.clips_per_subject):
            rng = np.random.default_rng([cfg.seed, s_idx, c])
            frames, info = render_clip(subject, filmed, rng)
            if gray:  # a monochrome camera: one grey level per pixel, stored as three equal channels
                frames = [grayscale(f) for f in frames]
            clip = f"clip{c + 1:03d}"
            (tmp / subject.name / clip).mkdir(parents=True)
            for k, frame in enumerate(frames):
                cv2.imwrite(str(tmp / subject.name / clip / f"img{k + 1}.jpg"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
            rows.append({"Subject": subject.name, "Filename": clip, "OnsetFrame": info["onset"] + 1,
                         "ApexFrame": info["apex"] + 1, "OffsetFrame": info["offset"] + 1,
                         "Action Units": "+".join(a[2:] for a in info["aus"]),
                         "Estimated Emotion": info["label"], "Frames": info["frames"],
                         "AmplitudeIOD": info["amplitude_iod"], "Blink": info["blink"],
                         "DistractorAU": info["distractor"], "Photo": subject.photo})
            if progress:
                progress(len(rows), total)
    pd.DataFrame(rows).to_csv(tmp / "coding.csv", index=False)
    (tmp / "subjects.json").write_text(json.dumps(
        {"config": asdict(cfg), "subjects": [{"name": s.name, "photo": s.photo, **s.params,
                                              **({"fps": fps, "grayscale": gray} if cfg.capture != "single" else {})}
                                             for s, (fps, gray) in zip(subjects, captures)]},
        indent=1))


def load_samples(root: Path) -> list[Sample]:
    """Read a generated set's coding sheet into :class:`Sample` records.

    Raises:
        MissingFileError: ``root/coding.csv`` missing. DataError: an unreadable sheet or
        ``subjects.json``, a missing column, an unparsable cell, an unknown emotion or a missing
        frame file (each names the sheet and row).
    """
    import pandas as pd

    sheet = root / "coding.csv"
    if not sheet.exists():
        raise MissingFileError(f"synthetic coding sheet {sheet} not found")
    try:
        df = pd.read_csv(sheet, dtype={"Subject": str, "Filename": str, "Action Units": str})
    except Exception as exc:  # EmptyDataError, ParserError, UnicodeDecodeError, ...: none names the file
        raise DataError(f"{sheet}: not a readable coding sheet ({short_reason(exc)})") from None
    required = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units",
                "Estimated Emotion", "Frames"]
    absent = [c for c in required if c not in df.columns]
    if absent:
        raise DataError(f"{sheet}: missing column(s) {absent}")
    samples = []
    try:
        described = json.loads((root / "subjects.json").read_text())
        fps = float(described["config"]["fps"])
        subject_fps = {str(s["name"]): float(s["fps"]) for s in described.get("subjects", []) if "fps" in s}
    except (ValueError, KeyError, TypeError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise DataError(f"{root / 'subjects.json'}: not a readable synthetic set description "
                        f"({short_reason(exc)})") from None
    for row_no, r in enumerate(df.to_dict("records"), start=2):
        try:
            n, onset, apex, offset = (int(r[c]) for c in ("Frames", "OnsetFrame", "ApexFrame", "OffsetFrame"))
        except (TypeError, ValueError):
            raise DataError(f"{sheet}:{row_no}: frame numbers must be integers, got "
                            f"{[r[c] for c in ('Frames', 'OnsetFrame', 'ApexFrame', 'OffsetFrame')]}") from None
        if r["Estimated Emotion"] not in CLASSES:
            raise DataError(f"{sheet}:{row_no}: unknown emotion {r['Estimated Emotion']!r}; expected one of {CLASSES}")
        clip_dir = root / r["Subject"] / r["Filename"]
        paths = tuple(str(clip_dir / f"img{k}.jpg") for k in range(1, n + 1))
        missing = [p for p in paths if not os.path.exists(p)]
        if missing:
            raise DataError(f"{sheet}:{row_no}: frame file {missing[0]} is missing")
        aus = tuple(f"AU{a}" for a in str(r["Action Units"]).split("+") if a and a != "nan")
        samples.append(Sample(subject=r["Subject"], clip_id=r["Filename"], frame_paths=paths,
                              onset=onset - 1, apex=apex - 1, offset=offset - 1, aus=aus,
                              emotion=r["Estimated Emotion"],
                              label=r["Estimated Emotion"], database="synthetic",
                              fps=subject_fps.get(r["Subject"], fps),
                              source=f"{sheet}:{row_no}"))
    return samples


def synthetic_dataset(cfg: SyntheticConfig | None = None, faces_dir=None, cache_dir: Path | None = None,
                      progress=None) -> tuple[Path, list[Sample]]:
    """Generate (once) and load the synthetic set.

    Returns:
        (folder, samples): the cache folder and one :class:`Sample` per clip, labels in :data:`CLASSES`.
    """
    cfg = cfg or SyntheticConfig()
    photos = load_face_photos(faces_dir)
    out = dataset_dir(cfg, photos, cache_dir)
    if not (out / "coding.csv").exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        generate(cfg, out, photos, progress=progress)
    return out, load_samples(out)
