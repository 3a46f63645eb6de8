"""Real processes on one cache (issue 31, "caches"): ``mer-keras data prepare`` interrupted by real
signals, and two ``mer-keras data prepare`` commands filling one cache at once.

Each command runs as a subprocess in its own session (as a terminal's job: Ctrl-C reaches the
whole process group). Its worker processes are found through ``/proc`` (no psutil) and must be
gone when it has exited.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.corrupt import encode, face_frames, write_video

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "mer_keras.cli.main"]


def _manifest(root: Path, clips: int) -> Path:
    """``clips`` frame folders of 12 face frames, alternately labelled, in a manifest."""
    frames = [encode(f, ".jpg") for f in face_frames(12)]
    rows = ["subject,label,frames,onset,apex,offset"]
    for k in range(clips):
        folder = root / f"clip{k:02d}"
        folder.mkdir(parents=True)
        for i, data in enumerate(frames, start=1):
            (folder / f"frame{i}.jpg").write_bytes(data)
        rows.append(f"s{k % 4},{'positive' if k % 2 else 'negative'},clip{k:02d},1,4,12")
    path = root / "clips.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def _children(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (from /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


def _alive(pid: int) -> bool:
    """True for a running process (a zombie waiting for a parent that is not ours counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _leftovers(cache: Path) -> list[str]:
    """Temporary files and folders or lock files anywhere in the cache."""
    return [str(p) for p in cache.rglob("*") if p.name.startswith(".") or p.name.endswith(".lock")
            or ".tmp-" in p.name]


def _interrupt(tmp_path: Path, sig: int, whole_group: bool) -> None:
    csv = _manifest(tmp_path / "data", clips=30)
    cache = tmp_path / "cache"
    proc = subprocess.Popen([*CLI, "data", "prepare", "manifest", "--root", str(csv), "--cache-dir", str(cache),
                             "--workers", "2"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not list(cache.glob("clips/*/*.npy")):  # the workers have started and written a clip
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no clip prepared in 240 s"
            time.sleep(0.05)
        workers = _children(proc.pid)
        assert len(workers) >= 2, workers
        (os.killpg if whole_group else os.kill)(proc.pid, sig)
        sent = time.monotonic()
        out, err = proc.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 128 + sig, (proc.returncode, err[-3000:])
    lines = [line for line in err.splitlines() if line.strip()]
    name = signal.Signals(sig).name
    assert len(lines) == 1 and lines[0].startswith(f"interrupted by {name} after "), err[-3000:]
    assert "run the same command again to resume" in lines[0]
    assert "Traceback" not in out + err and "Exception ignored" not in out + err
    assert took < 20, f"{took:.1f} s to stop"
    time.sleep(0.5)
    assert not [p for p in workers if _alive(p)], [Path(f"/proc/{p}/cmdline").read_bytes() for p in workers if
                                                   _alive(p)]
    assert not _leftovers(cache), _leftovers(cache)

    # what was written stays and is found by a rerun: every file is a loadable entry of a clip
    import numpy as np

    from mer_keras.data.manifest import load
    from mer_keras.data.pipeline import cache_path
    from mer_keras.data.prepare import DEFAULT_REPRESENTATIONS

    written = sorted(cache.glob("clips/*/*.npy"))
    clips, _ = load(csv, cache_dir=cache)
    expected = {cache_path(cache, s, c) for s in clips.samples for c in DEFAULT_REPRESENTATIONS}
    assert 0 < len(written) < len(expected) and set(written) <= expected
    for p in written:
        assert np.load(p, allow_pickle=False).dtype == np.float32


def test_ctrl_c_stops_data_prepare_and_its_workers_cleanly(tmp_path):
    """SIGINT to the process group (a terminal's Ctrl-C): one line, exit 130, no traceback, no worker
    left, nothing half-written, every clip written kept."""
    _interrupt(tmp_path, signal.SIGINT, whole_group=True)


WORKER_IN_A_GC_CALLBACK = """
import gc, os, signal
from mer_keras.data import pipeline

pipeline._worker_init(os.getppid())
stage = []

def callback(phase, info):  # SIGTERM arrives while Python runs a garbage-collector callback
    if phase == "start" and not stage:
        stage.append(1)
        os.kill(os.getpid(), signal.SIGTERM)
        sum(range(1000))  # the handler runs here, where its exception can only be reported

def job(_):
    gc.callbacks.append(callback)
    gc.collect()
    while True:  # the job goes on until the signal stops it in its own code
        sum(range(1000))

pipeline._prepare_one = job
pipeline._worker_job(None)
"""


def test_sigterm_during_a_gc_callback_still_stops_the_worker_s_job():
    """A SIGTERM whose exception lands in a garbage-collector callback (XLA registers one) is only
    reported there: the worker sends it again and stops the job in its own code, silently."""
    proc = subprocess.run([sys.executable, "-c", WORKER_IN_A_GC_CALLBACK], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)  # without the re-sent signal the job never ends
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr[-2000:]
    assert "Exception ignored" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]


@pytest.mark.slow
def test_sigterm_to_the_main_process_stops_its_workers(tmp_path):
    """SIGTERM to the main process only (a job scheduler's stop): exit 143, the workers stopped by it."""
    _interrupt(tmp_path, signal.SIGTERM, whole_group=False)


def test_two_data_prepare_commands_on_one_video_share_the_cache(tmp_path):
    """docs/RELIABILITY.md: concurrent writers are safe. Two commands started together on a
    manifest whose clips are one video (300 frames of 320 x 320 px: decoding takes long enough
    for both to be at it) both exit 0, decode it once, and leave no temporary folder or lock."""
    import cv2

    data = tmp_path / "data"
    data.mkdir()
    write_video(data / "clip.mp4", [cv2.resize(f, (320, 320)) for f in face_frames(12)] * 25)
    csv = data / "clips.csv"
    csv.write_text("subject,label,frames,onset,apex,offset\ns1,positive,clip.mp4,1,3,6\n"
                   "s2,negative,clip.mp4,10,13,16\n")
    cache = tmp_path / "cache"
    argv = [*CLI, "data", "prepare", "manifest", "--root", str(csv), "--cache-dir", str(cache), "--model",
            "micro_attention"]
    procs = [subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, (out[-2000:], err[-2000:])
        assert "2 clips prepared" in out and "Traceback" not in err, (out[-2000:], err[-2000:])
    videos = sorted(os.listdir(cache / "videos"))
    assert len(videos) == 1 and videos[0].startswith("clip-"), videos
    assert len(list((cache / "videos" / videos[0]).glob("frame_*.png"))) == 300
    assert len(list(cache.glob("clips/*/*.npy"))) == 2
    assert not _leftovers(cache), _leftovers(cache)


def test_sigterm_in_the_command_is_one_line_and_exit_143(monkeypatch, tmp_path):
    """In-process (fast): SIGTERM while the job runs is raised as Interrupted, reported in one line."""
    from typer.testing import CliRunner

    from mer_keras.cli.main import app
    from mer_keras.jobs import prepare as job

    def killed(opts, console):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        raise AssertionError("SIGTERM was not raised in the job")

    monkeypatch.setattr(job, "prepare", killed)
    before = signal.getsignal(signal.SIGTERM)
    res = CliRunner().invoke(app, ["data", "prepare", "manifest", "--root", str(tmp_path / "m.csv")])
    assert res.exit_code == 143, res.output
    assert [line for line in res.output.splitlines() if line.strip()] == [
        "interrupted by SIGTERM: every input prepared so far stays in the cache; run the same command again to resume"]
    assert signal.getsignal(signal.SIGTERM) is before  # the command's handlers are gone after it


@pytest.mark.parametrize("where", ["gc callback", "weakref callback"])
def test_a_signal_where_python_drops_exceptions_is_not_lost(where, capfd):
    """Python prints "Exception ignored in ..." and drops an exception raised in a gc callback (the
    issue's ``_xla_gc_callback`` traceback) or a weakref callback: the signal is sent again, silently."""
    import gc
    import weakref

    from mer_keras.cli.data import Interrupted, stop_on_signals

    fired, ref = [], None

    def deliver(*args):
        if not fired:
            fired.append(where)
            signal.raise_signal(signal.SIGINT)
            fired.append("not interrupted")  # the handler raises before this line

    class Thing:
        pass

    def callback(phase, info):
        if phase == "start":
            deliver()

    try:
        with pytest.raises(Interrupted), stop_on_signals():  # the callbacks are set up inside the block
            if where == "gc callback":
                gc.callbacks.append(callback)
                gc.collect()
            else:
                thing = Thing()
                ref = weakref.ref(thing, deliver)
                del thing
            time.sleep(5)
    finally:
        if callback in gc.callbacks:
            gc.callbacks.remove(callback)
    assert fired == [where] and (ref is None or ref() is None)
    assert "Exception ignored" not in capfd.readouterr().err
