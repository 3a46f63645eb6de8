"""Caches that answer for data that has changed or was never written (issue 31): per-clip entries
keyed by every frame that enters the representation (mer_keras.data.pipeline.clip_key), decoded
video folders published only after a verified complete write (mer_keras.preprocess.video),
leftovers of killed writers, failed writes named with their path and reason, frames of another
size, and containers OpenCV decodes (.webm).

Files, under ``caches/``: ``changed/`` (two 30-frame clips whose dynamic images were cached, then
25 middle frames of ``clip_a`` replaced; ``stale.npy``: its dynamic image before), ``inplace/``
(6-frame BMP clips cached, then ``clip_a``'s apex frame rewritten in place with its size and
modification time kept), ``video/`` (a 144-frame video and, in its cache, the folder an older
version published on a full disk: 5 frames), ``leftovers/`` (a video and a cache holding what killed
writers left: temporary folders and files, lock files), ``fulldisk/`` and ``npyfull/`` (inputs for
writes that fail), ``webm/`` (a VP8 ``.webm`` video and a text file named ``.webm``) and ``sizes/``
(clips with an apex or a middle frame of another size than the onset frame).

Concurrent writers and signals need real processes: tests/robustness/test_cache_processes.py.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import os
from pathlib import Path

import cv2
import numpy as np

from tests.helpers.cases import SKIPPED, Case, _call
from tests.helpers.corrupt import _write, encode, face_frames, write_video

KIND = "caches that answer for data that has changed or was never written"
HEADER = "subject,label,frames,path,onset,apex,offset"
#: Above Linux's largest pid: the process of a leftover named after it is gone.
DEAD_PID = 2 ** 22 + 12345


def _di():
    """The dynamic image of ``--model learnet`` (112 px)."""
    from mer_keras.factory import get_spec

    return get_spec("learnet").data_config()


def _clip(folder: Path, n: int, suffix: str = ".jpg", flip: bool = False, odd: dict[int, int] | None = None) -> None:
    """``n`` face frames ``frame<i><suffix>`` (i from 1); ``odd``: {frame number: side in px} of another size."""
    for i, f in enumerate(face_frames(n), start=1):
        if flip:
            f = cv2.flip(f, 1)
        if odd and i in odd:
            f = cv2.resize(f, (odd[i], odd[i]))
        _write(folder / f"frame{i}{suffix}", encode(f, suffix))


def _manifest(path: Path, rows: list[str]) -> Path:
    return _write(path, "\n".join([HEADER, *rows]) + "\n")


def _samples(csv_path: Path, cache: Path):
    from mer_keras.data.manifest import load

    return load(csv_path, cache_dir=cache)[0].samples


def _video_folder(video: Path, cache: Path) -> Path:
    """Where mer_keras.preprocess.video puts a video's frames (the key an older version used too)."""
    video = video.resolve()
    st = video.stat()
    key = hashlib.sha256(f"{video}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    return cache / "videos" / f"{video.stem}-{key}"


def _fill(name: str, d: Path, cfg) -> None:
    """Cache ``cfg`` for every clip of ``d/clips.csv`` in ``d/cache`` (as a first run would have)."""
    from mer_keras.data.pipeline import cache_path, prepare

    samples = _samples(d / "clips.csv", d / "cache")
    assert not prepare(samples, cfg, d / "cache"), name
    np.save(d / "stale.npy", np.load(cache_path(d / "cache", samples[0], cfg)))


def build(c) -> None:
    root = c / "caches"
    di = _di()

    # 25 middle frames replaced after the cache was filled
    d = root / "changed"
    _clip(d / "clip_a", 30)
    _clip(d / "clip_b", 30, flip=True)
    _manifest(d / "clips.csv", ["s1,positive,clip_a,,1,13,30", "s2,negative,clip_b,,1,13,30"])
    _fill("changed", d, di)
    other = face_frames(30)[::-1]
    for i in range(4, 29):
        _write(d / "clip_a" / f"frame{i}.jpg", encode(cv2.flip(cv2.GaussianBlur(other[i], (0, 0), 3), 0), ".jpg"))

    # the apex frame rewritten in place, its size and modification time kept (cp -p, rsync -t)
    d = root / "inplace"
    _clip(d / "clip_a", 6, ".bmp")
    _clip(d / "clip_b", 6, ".bmp", flip=True)
    _manifest(d / "clips.csv", ["s1,positive,clip_a,,1,3,6", "s2,negative,clip_b,,1,3,6"])
    _fill("inplace", d, di)
    apex = d / "clip_a" / "frame3.bmp"
    st = apex.stat()
    apex.write_bytes(encode(cv2.flip(face_frames(1)[0], 0), ".bmp"))  # a BMP of one size has one byte count
    os.utime(apex, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert apex.stat().st_size == st.st_size

    # what an older version published on a full disk: 5 of 144 frames, no count
    d = root / "video"
    video = write_video(_write(d / "clip.mp4", b""), face_frames(12) * 12)
    stale = _video_folder(video, d / "cache")
    stale.mkdir(parents=True)
    for i, f in enumerate(face_frames(5), start=1):
        cv2.imwrite(str(stale / f"frame_{i:05d}.png"), f)

    # what killed writers left: of the video (a temporary folder of each naming, its lock) and of a clip entry
    d = root / "leftovers"
    video = write_video(_write(d / "clip.mp4", b""), face_frames(12))
    _manifest(d / "clips.csv", ["s1,positive,clip.mp4,,1,4,12", "s2,negative,clip.mp4,,2,6,11"])
    folder = _video_folder(video, d / "cache")
    for left in (f".{folder.name}.a1b2c3d4", f"{folder.name}.tmp-{DEAD_PID}", ".other-0123.e5f6g7h8"):
        _write(folder.parent / left / "frame_00001.png", b"\x89PNG cut short")
    _write(folder.parent / f"{folder.name}.lock", b"")
    clips = d / "cache" / "clips" / _config_key(di)
    _write(clips / ".0123456789abcdef0123.k3j4h5g6.npy", b"\x93NUMPY cut short")
    _write(clips / "0123456789abcdef0123.npy.lock", b"")

    # inputs of writes that fail
    write_video(_write(root / "fulldisk" / "clip.mp4", b""), face_frames(12))
    _clip(root / "npyfull" / "clip_a", 6)

    # .webm (VP8), and a text file named .webm
    d = root / "webm"
    d.mkdir(parents=True)
    writer = cv2.VideoWriter(str(d / "clip.webm"), cv2.VideoWriter_fourcc(*"VP80"), 25, (96, 96))
    assert writer.isOpened(), "this OpenCV build cannot write VP8 .webm files"
    for f in face_frames(12):
        writer.write(f)
    writer.release()
    _write(d / "text.webm", "this is not a video\n")

    # frames of another size than the onset frame: the apex (every representation reads it), a middle one
    d = root / "sizes"
    _clip(d / "good", 6)
    _clip(d / "odd_apex", 6, odd={3: 120})
    _clip(d / "odd_middle", 6, odd={5: 120})
    _manifest(d / "rows.csv", ["s1,negative,good,,1,3,6", "s2,positive,odd_apex,,1,3,6",
                               "s3,positive,odd_middle,,1,3,6"])
    _manifest(d / "strict_apex.csv", ["s1,negative,good,,1,3,6", "s2,positive,odd_apex,,1,3,6"])


def _config_key(cfg) -> str:
    from mer_keras.data.pipeline import config_key

    return config_key(cfg)


# -- checks -------------------------------------------------------------------------------------

def _leftovers(cache: Path) -> list[str]:
    return [str(p) for p in cache.rglob("*") if p.name.startswith(".") or p.name.endswith(".lock")
            or ".tmp-" in p.name]


def _fresh(name: str):
    """A check: the entry the cache now holds for ``clip_a`` is its dynamic image computed afresh
    from the frames as they are, not the one cached before they changed (``stale.npy``)."""
    def check(root: Path, outcome) -> list[str]:
        from mer_keras.data.pipeline import cache_path, sample_representation

        d = root / "caches" / name
        cfg = _di()
        sample = next(s for s in _samples(d / "clips.csv", d / "cache") if s.clip_id == "clip_a")
        path = cache_path(d / "cache", sample, cfg)
        if not path.is_file():
            return [f"no cache entry {path} for the frames as they are now"]
        cached, stale = np.load(path), np.load(d / "stale.npy")
        out = []
        if np.abs(cached - stale).max() < 1.0:
            out.append(f"{path} is the dynamic image of the frames before they changed")
        if not np.allclose(cached, sample_representation(sample, cfg), atol=1e-3):
            out.append(f"{path} differs from the dynamic image computed afresh")
        return out + [f"left behind: {p}" for p in _leftovers(d / "cache")]
    return check


def _predicted(name: str, input_name: str, frames: int):
    """A check: ``<name>/pred.csv`` has one row for ``input_name`` whose offset is frame ``frames``
    (every decoded frame used), and the video cache holds one complete folder and nothing else."""
    def check(root: Path, outcome) -> list[str]:
        d = root / "caches" / name
        with open(d / "pred.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        out = []
        if len(rows) != 1 or not rows[0]["input"].endswith(input_name):
            return [f"expected one row for {input_name} in {d / 'pred.csv'}, got {rows}"]
        if int(rows[0]["offset"]) != frames:
            out.append(f"the clip ends at frame {rows[0]['offset']}, not at the video's last frame {frames}")
        folders = os.listdir(d / "cache" / "videos")
        if len(folders) != 1 or len(list((d / "cache" / "videos" / folders[0]).glob("frame_*.png"))) != frames:
            out.append(f"the video cache holds {folders}, not one folder of {frames} frames")
        return out + [f"left behind: {p}" for p in _leftovers(d / "cache")]
    return check


def _clean(name: str, frames: int | None = None):
    """A check: ``<name>/cache`` holds no temporary file or folder and no lock file, and (``frames``)
    one decoded video folder of that many frames."""
    def check(root: Path, outcome) -> list[str]:
        cache = root / "caches" / name / "cache"
        out = [f"left behind: {p}" for p in _leftovers(cache)]
        if frames is not None:
            folders = os.listdir(cache / "videos")
            if len(folders) != 1 or len(list((cache / "videos" / folders[0]).glob("frame_*.png"))) != frames:
                out.append(f"the video cache holds {folders}, not one folder of {frames} frames")
        return out
    return check


def _nothing_written(name: str):
    """A check: the failed write left nothing in ``<name>/cache`` (no folder, file or lock)."""
    def check(root: Path, outcome) -> list[str]:
        cache = root / "caches" / name / "cache"
        found = [str(p) for p in cache.rglob("*") if p.is_file() or p.name.startswith(".")
                 or p.parent.name == "videos"] if cache.exists() else []
        return [f"left in the cache: {p}" for p in found]
    return check


# -- library calls of failed writes ---------------------------------------------------------------

def _failing_imwrite(extract_frames, c):
    """The 12-frame video decoded while cv2.imwrite fails from frame 6 on (a full disk, as OpenCV says it)."""
    from unittest import mock

    real, calls = cv2.imwrite, []

    def imwrite(path, image, *args):
        calls.append(path)
        return real(path, image, *args) if len(calls) <= 5 else False

    with mock.patch.object(cv2, "imwrite", imwrite):
        return extract_frames(c / "caches/fulldisk/clip.mp4", c / "caches/fulldisk/cache")


def _full_npy(build_inputs, c):
    """A clip's dynamic image cached while numpy's write fails with ENOSPC."""
    from unittest import mock

    from mer_keras.data.pipeline import RepresentationConfig
    from mer_keras.data.records import Sample

    folder = c / "caches/npyfull/clip_a"
    sample = Sample(subject="s1", clip_id="clip_a", frame_paths=tuple(str(folder / f"frame{i}.jpg") for i in range(1, 7)),
                    onset=0, apex=2, offset=5, aus=(), emotion="", label="positive", database="corpus", fps=100.0,
                    source=str(folder))

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with mock.patch.object(np, "save", full):
        return build_inputs([sample], RepresentationConfig("dynamic_image", 64), c / "caches/npyfull/cache")


def cases() -> list[Case]:
    di = _config_key(_di())
    prepare = ["data", "prepare", "manifest", "--model", "learnet", "--cache-dir"]
    done = (f"{di}:", di)  # the command's last lines: "<config>: <cache>/clips/<config>"

    def prepared(name: str) -> tuple[str, str]:
        return f"{{c}}/caches/{name}/cache/clips/{done[1]}", done[0]

    predict = ["predict", "{c}/runs/good"]
    return [
        Case("dynamic image cached before 25 middle frames of the clip were replaced", "cli",
             [*prepare, "{c}/caches/changed/cache", "--root", "{c}/caches/changed/clips.csv"], 0,
             *prepared("changed"), kind=KIND, check=_fresh("changed")),
        Case("apex frame rewritten in place with its size and modification time kept", "cli",
             [*prepare, "{c}/caches/inplace/cache", "--root", "{c}/caches/inplace/clips.csv"], 0,
             *prepared("inplace"), kind=KIND, check=_fresh("inplace")),
        Case("video folder an older version published with 5 of its 144 frames (full disk)", "cli",
             [*predict, "{c}/caches/video/clip.mp4", "--cache-dir", "{c}/caches/video/cache", "--out",
              "{c}/caches/video/pred.csv"], 0, "{c}/caches/video/pred.csv", "predictions written to", kind=KIND,
             check=_predicted("video", "clip.mp4", 144)),
        Case("temporary folders, files and locks of killed writers in the cache", "cli",
             [*prepare, "{c}/caches/leftovers/cache", "--root", "{c}/caches/leftovers/clips.csv"], 0,
             *prepared("leftovers"), kind=KIND, check=_clean("leftovers", frames=12)),
        Case("frame write that fails while decoding a video (cv2.imwrite returns False)", "call",
             _call("mer_keras.preprocess.video.extract_frames", _failing_imwrite), OSError,
             "cannot write {c}/caches/fulldisk/cache/videos/clip-", "(frame 6 of ", kind=KIND,
             check=_nothing_written("fulldisk")),
        Case("cache entry written on a full disk (ENOSPC)", "call",
             _call("mer_keras.data.pipeline.build_inputs", _full_npy), OSError,
             "cannot write {c}/caches/npyfull/cache/clips/dynamic_image-", ".npy: No space left on device",
             kind=KIND, check=_nothing_written("npyfull")),
        Case(".webm video (VP8) to predict", "cli",
             [*predict, "{c}/caches/webm/clip.webm", "--cache-dir", "{c}/caches/webm/cache", "--out",
              "{c}/caches/webm/pred.csv"], 0, "{c}/caches/webm/pred.csv", "predictions written to", kind=KIND,
             check=_predicted("webm", "clip.webm", 12)),
        Case("text file named .webm to predict", "cli",
             [*predict, "{c}/caches/webm/text.webm", "--cache-dir", "{c}/caches/webm/cache"], 2,
             "{c}/caches/webm/text.webm", "cannot open video", kind=KIND),
        Case("apex frame of another size than the onset frame (--strict)", "cli",
             ["data", "prepare", "manifest", "--model", "off_apexnet", "--cache-dir", "{c}/caches/sizes/cache",
              "--root", "{c}/caches/sizes/strict_apex.csv", "--strict"], 2,
             "{c}/caches/sizes/strict_apex.csv:3", "odd_apex/frame3.jpg is 120 x 120 px but the onset frame", kind=KIND),
        Case("apex frame of another size than the onset frame", "cli",
             [*prepare, "{c}/caches/sizes/cache", "--root", "{c}/caches/sizes/rows.csv"], SKIPPED,
             "{c}/caches/sizes/rows.csv:3", "odd_apex/frame3.jpg is 120 x 120 px but the onset frame", kind=KIND),
        Case("middle frame of another size than the onset frame, in a dynamic image", "cli",
             [*prepare, "{c}/caches/sizes/cache", "--root", "{c}/caches/sizes/rows.csv"], SKIPPED,
             "{c}/caches/sizes/rows.csv:4", "odd_middle/frame5.jpg is 120 x 120 px but the onset frame", kind=KIND),
    ]
