"""Caches that answer for data that has changed or was never written (issue 31, "caches").

* the per-clip key covers every frame that enters the representation, by ``os.stat`` only;
* a clip whose frames differ in size is refused by name;
* a decoded video folder is published only after a verified complete write; a failed write (a full
  disk, for real on a small tmpfs where this process may mount one) names the folder and the OS
  reason, and nothing is published or left behind;
* one lock per cache entry: concurrent writers wait and reuse; leftovers of killed writers are removed;
* containers OpenCV decodes (``.webm``) are videos.

The signal and concurrent-command tests, with real processes, are in ``test_cache_processes.py``.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from mer_keras.data.pipeline import RepresentationConfig, build_inputs, cache_path, clip_key, frames_used
from mer_keras.data.records import Sample
from mer_keras.errors import DataError
from tests.helpers.corrupt import encode, face_frames, write_video


def _clip(folder: Path, n: int = 30, suffix: str = ".jpg", size: int = 96, onset: int = 0, apex: int | None = None,
          offset: int | None = None) -> Sample:
    """A clip of ``n`` face frames written to ``folder`` (``frame<i><suffix>``) as a Sample."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, f in enumerate(face_frames(n, size), start=1):
        p = folder / f"frame{i}{suffix}"
        p.write_bytes(encode(f, suffix))
        paths.append(str(p))
    offset = n - 1 if offset is None else offset
    return Sample(subject="s1", clip_id=folder.name, frame_paths=tuple(paths), onset=onset,
                  apex=(onset + offset) // 2 if apex is None else apex, offset=offset, aus=(), emotion="", label="x",
                  database="test", fps=100.0, source=f"{folder}")


def _rewrite(path: str, image: np.ndarray, keep_times: bool = True) -> None:
    """Rewrite a frame file in place with another image (same encoding), its times restored."""
    st = os.stat(path)
    Path(path).write_bytes(encode(image, Path(path).suffix))
    if keep_times:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


# -- the clip key ------------------------------------------------------------------------------

def test_the_clip_key_covers_every_frame_that_enters_the_representation(tmp_path):
    s = _clip(tmp_path / "clip", n=30, onset=2, apex=10, offset=27)
    reps = {name: RepresentationConfig(name, 28 if name == "flow" else 64) for name in ("dynamic_image", "apex", "flow")}
    reps["sequence"] = RepresentationConfig("sequence", 64, frames=8)
    before = {name: clip_key(s, cfg) for name, cfg in reps.items()}
    sampled = set(frames_used(s, reps["sequence"]))
    middle = next(i for i in range(s.onset + 1, s.offset) if i not in sampled and i != s.apex)
    other = cv2.flip(face_frames(1)[0], 1)

    _rewrite(s.frame_paths[middle], other, keep_times=False)  # a middle frame no sampled representation reads
    after = {name: clip_key(s, cfg) for name, cfg in reps.items()}
    assert after["dynamic_image"] != before["dynamic_image"]  # the dynamic image reads onset..offset
    assert after["apex"] == before["apex"] and after["flow"] == before["flow"]  # onset and apex only
    assert after["sequence"] == before["sequence"]  # not one of its 8 sampled frames

    seq = sorted(sampled - {s.onset, s.apex})[1]
    _rewrite(s.frame_paths[seq], other, keep_times=False)
    assert clip_key(s, reps["sequence"]) != before["sequence"]

    # the apex rewritten in place with its size and modification time kept (cp -p, rsync -t): BMP
    # files of one size have one byte count, so only the inode or ctime can tell
    b = _clip(tmp_path / "bmp", n=6, suffix=".bmp", onset=0, apex=3, offset=5)
    key = clip_key(b, reps["apex"])
    size, mtime = os.stat(b.frame_paths[3]).st_size, os.stat(b.frame_paths[3]).st_mtime_ns
    time.sleep(0.01)
    _rewrite(b.frame_paths[3], other)
    assert (os.stat(b.frame_paths[3]).st_size, os.stat(b.frame_paths[3]).st_mtime_ns) == (size, mtime)
    assert clip_key(b, reps["apex"]) != key


def test_the_clip_key_reads_no_file_and_is_fast(tmp_path, monkeypatch):
    """100 frames: stat calls only (opening any file fails here), well under a millisecond a frame."""
    import builtins
    import io

    s = _clip(tmp_path / "clip", n=100)
    cfg = RepresentationConfig("dynamic_image", 112)

    def refuse(*args, **kwargs):
        raise AssertionError(f"clip_key opened a file: {args[:1]}")

    for mod, name in ((builtins, "open"), (io, "open"), (os, "open")):
        monkeypatch.setattr(mod, name, refuse)
    clip_key(s, cfg)
    t = time.perf_counter()
    for _ in range(20):
        clip_key(s, cfg)
    per_call = (time.perf_counter() - t) / 20
    monkeypatch.undo()
    assert per_call < 0.05, f"{per_call * 1e3:.2f} ms for a 100-frame clip"


def test_a_cache_filled_before_middle_frames_were_replaced_is_not_used(tmp_path):
    """The issue's case: 25 middle frames replaced after the cache was filled; the dynamic image
    from the cache is the one computed afresh from the new frames, not the old one."""
    s = _clip(tmp_path / "clip", n=30, onset=0, apex=12, offset=29)
    cfg = RepresentationConfig("dynamic_image", 64)
    old = build_inputs([s], cfg, cache_dir=tmp_path / "cache")
    other = face_frames(30, 96)[::-1]
    for i in range(3, 28):
        Path(s.frame_paths[i]).write_bytes(encode(cv2.flip(other[i], 1), ".jpg"))
    cached = build_inputs([s], cfg, cache_dir=tmp_path / "cache")
    fresh = build_inputs([s], cfg)
    np.testing.assert_allclose(cached, fresh, atol=1e-4)
    assert np.abs(cached - old).max() > 1.0
    assert len(list((tmp_path / "cache" / "clips").glob("*/*.npy"))) == 2  # old entry kept, new one added


# -- frames of one size -------------------------------------------------------------------------

@pytest.mark.parametrize("which, representation", [("apex", "apex"), ("apex", "flow"), ("middle", "dynamic_image")])
def test_a_frame_of_another_size_is_a_data_error_naming_it(tmp_path, which, representation):
    s = _clip(tmp_path / "clip", n=8, onset=0, apex=3, offset=7)
    index = s.apex if which == "apex" else 5
    Path(s.frame_paths[index]).write_bytes(encode(face_frames(1, 120)[0], ".jpg"))
    cfg = RepresentationConfig(representation, 28 if representation == "flow" else 64)
    with pytest.raises(DataError) as err:
        build_inputs([s], cfg)
    msg = str(err.value)
    assert s.key in msg and s.frame_paths[index] in msg and "120 x 120 px" in msg, msg
    assert f"onset frame {s.frame_paths[s.onset]} is 96 x 96 px" in msg, msg
    if representation == "dynamic_image":  # through the cache: the clip is reported, nothing is cached
        with pytest.raises(DataError, match="120 x 120 px"):
            build_inputs([s], cfg, cache_dir=tmp_path / "cache")
        assert not list((tmp_path / "cache").rglob("*.npy"))


# -- cache entries: write errors, locks, leftovers ----------------------------------------------

def test_a_failed_cache_write_names_the_entry_and_the_reason(tmp_path, monkeypatch):
    from mer_keras import atomic

    target = tmp_path / "clips" / "x.npy"
    with pytest.raises(OSError) as err:
        with atomic.atomic_path(target):
            raise OSError(errno.ENOSPC, "No space left on device")  # as np.save says it
    assert str(err.value) == f"cannot write {target}: No space left on device" and err.value.errno == errno.ENOSPC
    assert list((tmp_path / "clips").iterdir()) == []  # the temporary file is gone
    with pytest.raises(FileNotFoundError) as err:  # an error about another file passes unchanged
        with atomic.atomic_path(target):
            open(tmp_path / "missing" / "source.bin", "rb")
    assert err.value.filename == str(tmp_path / "missing" / "source.bin")


def test_a_clip_entry_that_cannot_be_written_stops_the_run(tmp_path, monkeypatch):
    """ENOSPC writing a .npy is an OSError naming the entry (not a bad clip to skip); nothing left."""
    s = _clip(tmp_path / "clip", n=6, onset=0, apex=3, offset=5)
    cfg = RepresentationConfig("apex", 32)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", full)
    with pytest.raises(OSError, match=r"^cannot write .*/clips/apex-\w+/\w+\.npy: No space left on device$"):
        build_inputs([s], cfg, cache_dir=tmp_path / "cache")
    assert [p.name for p in (tmp_path / "cache" / "clips").rglob("*") if p.is_file()] == []


def test_locked_waits_for_the_holder_and_leaves_no_lock_file(tmp_path):
    import threading

    from mer_keras.atomic import locked

    lock = tmp_path / "entry.npy.lock"
    order = []
    with locked(lock) as mine:
        assert mine and lock.exists()
        with locked(lock, wait=False) as other:  # another open file description: refused while held
            assert other is False

        def second():
            with locked(lock):
                order.append("second")

        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.2)
        order.append("first done")
    t.join(10)
    assert order == ["first done", "second"]
    assert not lock.exists()


def test_leftovers_of_killed_writers_are_swept_but_not_live_ones(tmp_path):
    from mer_keras.atomic import lock_path, locked, sweep_leftovers

    folder = tmp_path / "clips" / "apex-1"
    folder.mkdir(parents=True)
    (folder / "aaaa.npy").write_bytes(b"done")
    (folder / ".bbbb.k3j4h5g6.npy").write_bytes(b"half")  # killed while writing bbbb.npy
    (folder / "cccc.npy.lock").write_bytes(b"")  # lock file of a killed holder
    (folder / ".dddd.x1y2z3w4.npy").write_bytes(b"half")  # dddd.npy is being written right now
    with locked(lock_path(folder / "dddd.npy")):
        sweep_leftovers(folder)
        assert sorted(p.name for p in folder.iterdir()) == [".dddd.x1y2z3w4.npy", "aaaa.npy", "dddd.npy.lock"]
    sweep_leftovers(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["aaaa.npy"]


# -- decoded videos -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    """A 144-frame 96 x 96 face video (mp4v)."""
    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4", face_frames(12) * 12)


def _entries(cache: Path) -> list[str]:
    folder = cache / "videos"
    return sorted(os.listdir(folder)) if folder.is_dir() else []


def test_a_decoded_video_is_published_complete_with_its_count(video, tmp_path):
    from mer_keras.preprocess.video import MARKER, extract_frames

    out = extract_frames(video, tmp_path)
    frames = sorted(out.glob("frame_*.png"))
    assert len(frames) == 144 and all(f.stat().st_size > 0 for f in frames)
    import json

    assert json.loads((out / MARKER).read_text())["frames"] == 144
    assert _entries(tmp_path) == [out.name]  # no lock file, no temporary folder


def test_a_frame_write_that_fails_publishes_nothing_and_names_the_folder(video, tmp_path, monkeypatch):
    """cv2.imwrite returning False (a full disk, as OpenCV reports it) is an OSError naming the
    cache folder, the frame and the video; nothing is published; the next call decodes all."""
    from mer_keras.preprocess import video as mod

    real = cv2.imwrite
    calls = []

    def fails_after_5(path, image, *args):
        calls.append(path)
        return real(path, image, *args) if len(calls) <= 5 else False

    monkeypatch.setattr(mod.cv2, "imwrite", fails_after_5)
    with pytest.raises(OSError) as err:
        mod.extract_frames(video, tmp_path)
    msg = str(err.value)
    assert msg.startswith(f"cannot write {tmp_path}/videos/clip-") and f"frame 6 of {video}" in msg, msg
    assert _entries(tmp_path) == []  # not published, no temporary folder, no lock file
    monkeypatch.undo()
    out = mod.extract_frames(video, tmp_path)
    assert len(list(out.glob("frame_*.png"))) == 144


def test_a_frame_the_disk_did_not_keep_is_found_before_publishing(video, tmp_path, monkeypatch):
    """imwrite says yes but the file is empty or cut short: the verification refuses the folder."""
    from mer_keras.preprocess import video as mod

    real = cv2.imwrite

    def cut_short(path, image, *args):
        ok = real(path, image, *args)
        if path.endswith("frame_00050.png"):
            data = Path(path).read_bytes()
            Path(path).write_bytes(data[: len(data) // 2])
        return ok

    monkeypatch.setattr(mod.cv2, "imwrite", cut_short)
    with pytest.raises(OSError, match=r"frame 50 of the 144 decoded .* is missing, empty or cut short"):
        mod.extract_frames(video, tmp_path)
    assert _entries(tmp_path) == []


def test_a_folder_published_incomplete_by_an_older_version_is_decoded_again(video, tmp_path):
    """The issue's 5 of 144 frames, left in the cache (no decoded.json): not trusted."""
    from mer_keras.preprocess.video import extract_frames

    out = extract_frames(video, tmp_path)
    for f in sorted(out.iterdir())[5:]:
        f.unlink()  # what the old code published on a full disk: 5 frames, no count
    assert len(list(out.iterdir())) == 5
    again = extract_frames(video, tmp_path)
    assert again == out and len(list(out.glob("frame_*.png"))) == 144
    assert _entries(tmp_path) == [out.name]


def test_leftovers_of_killed_video_writers_are_removed(video, tmp_path):
    from mer_keras.preprocess.video import extract_frames

    out = extract_frames(video, tmp_path / "probe")  # only to learn the folder's name
    name = out.name
    videos = tmp_path / "cache" / "videos"
    videos.mkdir(parents=True)
    dead = 2 ** 22 + 12345  # above Linux's largest pid: no such process
    for left in (f"{name}.tmp-{dead}", f".{name}.a1b2c3d4", f"other-0123.tmp-{dead}", ".other-0123.e5f6g7h8"):
        (videos / left).mkdir()
        (videos / left / "frame_00001.png").write_bytes(b"\x89PNG half")
    (videos / f"{name}.lock").write_bytes(b"")
    (videos / f"live-4567.tmp-{os.getppid()}").mkdir()  # an older version's writer that is alive
    extract_frames(video, tmp_path / "cache")
    assert sorted(os.listdir(videos)) == sorted([name, f"live-4567.tmp-{os.getppid()}"])


def test_two_processes_decoding_one_video_share_one_folder(video, tmp_path):
    """Started together (a barrier): one decodes, the other waits on the lock and reuses it."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(3)
    results = ctx.Queue()
    procs = [ctx.Process(target=_decode_after, args=(barrier, str(video), str(tmp_path), results)) for _ in range(3)]
    for p in procs:
        p.start()
    got = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    assert all(not g.startswith("error") for g in got), got
    assert len(set(got)) == 1 and _entries(tmp_path) == [Path(got[0]).name]
    assert len(list(Path(got[0]).glob("frame_*.png"))) == 144


def _decode_after(barrier, video, cache, results) -> None:
    from mer_keras.preprocess.video import extract_frames

    barrier.wait()
    try:
        results.put(str(extract_frames(video, cache)))
    except Exception as exc:  # noqa: BLE001  (reported to the test)
        results.put(f"error {type(exc).__name__}: {exc}")


def test_webm_and_other_containers_opencv_decodes_are_videos(tmp_path):
    from mer_keras.preprocess.video import VIDEO_SUFFIXES, extract_frames, is_video

    assert {".webm", ".mkv", ".flv", ".3gp", ".ogv", ".mts"} <= set(VIDEO_SUFFIXES)
    webm = tmp_path / "clip.webm"
    writer = cv2.VideoWriter(str(webm), cv2.VideoWriter_fourcc(*"VP80"), 25, (96, 96))
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write VP8 .webm files")
    for f in face_frames(12):
        writer.write(f)
    writer.release()
    assert is_video(webm)
    assert len(list(extract_frames(webm, tmp_path / "cache").glob("frame_*.png"))) == 12
    text = tmp_path / "text.webm"
    text.write_text("not a video\n")
    with pytest.raises(DataError, match=f"cannot open video {text}"):
        extract_frames(text, tmp_path / "cache")


# -- a real full disk: a 2 MB tmpfs -------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs mounted for the test (root with CAP_SYS_ADMIN); skipped where it cannot be."""
    where = tmp_path / "disk"
    where.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command: a full disk cannot be made here")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2M", "tmpfs", str(where)], capture_output=True,
                         text=True, timeout=30)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a 2 MB tmpfs for a full disk (needs root and CAP_SYS_ADMIN): {res.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=30)


def test_a_full_disk_while_decoding_publishes_nothing_and_says_so(small_disk, tmp_path):
    from mer_keras.preprocess.video import extract_frames

    big = write_video(tmp_path / "big.mp4", [cv2.resize(f, (160, 160)) for f in face_frames(12)] * 12)
    with pytest.raises(OSError) as err:
        extract_frames(big, small_disk)
    assert err.value.errno == errno.ENOSPC, err.value
    assert str(err.value).startswith(f"cannot write {small_disk}/videos/big-") and "No space left on device" in str(
        err.value), err.value
    assert _entries(small_disk) == []  # nothing published, no temporary folder, no lock
    small = write_video(tmp_path / "small.mp4", face_frames(12))
    assert len(list(extract_frames(small, small_disk).glob("frame_*.png"))) == 12  # the space is back


def test_a_full_disk_while_writing_a_clip_entry_names_it(small_disk, tmp_path):
    s = _clip(tmp_path / "clip", n=6, onset=0, apex=3, offset=5)
    cfg = RepresentationConfig("apex", 224)  # a 600 kB entry
    (small_disk / "filler").write_bytes(b"\0" * (2 * 2 ** 20 - 300 * 2 ** 10))
    with pytest.raises(OSError) as err:
        build_inputs([s], cfg, cache_dir=small_disk)
    path = cache_path(small_disk, s, cfg)
    assert str(err.value).startswith(f"cannot write {path}: No space left on device"), err.value
    assert err.value.errno == errno.ENOSPC
    assert sorted(p.name for p in path.parent.iterdir()) == []
    (small_disk / "filler").unlink()
    x = build_inputs([s], cfg, cache_dir=small_disk)
    assert x.shape == (1, 224, 224, 3) and path.is_file()


def test_sample_lists_only_the_frames_it_reads(tmp_path, monkeypatch):
    """flow and apex read two frames, the dynamic image every frame onset..offset, once each."""
    from mer_keras.data import pipeline

    s = _clip(tmp_path / "clip", n=12, onset=1, apex=4, offset=10)
    read = []
    real = pipeline.read_frame
    monkeypatch.setattr(pipeline, "read_frame", lambda p: read.append(p) or real(p))
    pipeline.sample_representation(s, RepresentationConfig("apex", 32))
    assert read == [s.frame_paths[1], s.frame_paths[4]]
    read.clear()
    pipeline.sample_representation(dataclasses.replace(s), RepresentationConfig("sequence", 32, frames=16))
    assert len(read) == len(set(read)) == 10  # 16 samples over 10 frames: each file read once
