"""A quiet, light command line (issue 20): help and version without TensorFlow, no native
start-up lines, no box art or type artefacts in help."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("tensorflow", "tf_keras", "cv2", "pandas", "sklearn", "mediapipe")

_RUN = """
import sys
from mer_keras.cli.main import app
try:
    app({args!r}, prog_name="mer-keras")
except SystemExit as exc:
    code = exc.code
print("LOADED", sorted(m for m in {heavy!r} if m in sys.modules))
print("EXIT", code)
"""


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _RUN.format(args=list(args), heavy=HEAVY)],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"], ["evaluate", "--help"], ["tune", "--help"],
                                  ["data", "prepare", "--help"], ["--version"]])
def test_help_and_version_load_no_heavy_library_and_print_only_their_own_lines(args):
    out = _cli(*args)
    assert "LOADED []" in out.stdout and "EXIT 0" in out.stdout, out.stdout[-500:] + out.stderr[-500:]
    assert out.stderr == ""
    assert "<bool>" not in out.stdout and "╭" not in out.stdout


@pytest.mark.parametrize("args", [["models"], pytest.param(["models", "--model", "ststnet"], marks=pytest.mark.slow),
                                  pytest.param(["models", "--presets"], marks=pytest.mark.slow)])
def test_listing_models_imports_no_tensorflow(args):
    """The registry reads each architecture's spec without TensorFlow (it loads when a model is built)."""
    out = _cli(*args)
    assert "EXIT 0" in out.stdout, out.stdout[-500:] + out.stderr[-500:]
    loaded = out.stdout.split("LOADED ")[1].splitlines()[0]
    assert "tensorflow" not in loaded and "tf_keras" not in loaded, loaded


def test_version_names_the_package_version():
    import mer_keras

    assert f"mer-keras {mer_keras.__version__}" in _cli("--version").stdout


@pytest.mark.parametrize("level", [None, "3", pytest.param("1", marks=pytest.mark.slow),
                                   pytest.param("2", marks=pytest.mark.slow)])
def test_a_user_set_log_level_is_at_least_as_quiet_as_the_default(level):
    """TF_CPP_MIN_LOG_LEVEL=3 (or 1, 2) set by the user before mer_keras shows no native start-up
    line either; 0 asks for everything (its lines are TensorFlow's to print)."""
    import os

    code = "import mer_keras\nfrom mer_keras._keras import tf\ntf.constant(1.0) + 1.0\nprint('ok')"
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "MER_KERAS_VERBOSE", "MER_KERAS_USER_TF_LOG")}
    if level is not None:
        env["TF_CPP_MIN_LOG_LEVEL"] = level
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert out.stdout.strip() == "ok"
    assert not [line for line in out.stderr.splitlines() if line.strip()], out.stderr[:1000]


def test_level_zero_or_verbose_shows_native_lines_unfiltered(monkeypatch):
    from mer_keras.native import verbose

    monkeypatch.delenv("MER_KERAS_VERBOSE", raising=False)
    for recorded, expected in [("", False), ("3", False), ("2", False), ("0", True)]:
        monkeypatch.setenv("MER_KERAS_USER_TF_LOG", recorded)
        assert verbose() is expected
    monkeypatch.setenv("MER_KERAS_VERBOSE", "1")
    assert verbose() is True


def test_native_lines_that_are_not_noise_are_kept(capfd, monkeypatch):
    import os

    from mer_keras.native import quiet_native_stderr

    monkeypatch.setenv("MER_KERAS_USER_TF_LOG", "")
    monkeypatch.delenv("MER_KERAS_VERBOSE", raising=False)

    with quiet_native_stderr():
        os.write(2, b"E0000 cuda_dnn.cc Unable to register cuDNN factory: already registered\n")
        os.write(2, b"a real problem\n")
    err = capfd.readouterr().err
    assert "a real problem" in err and "cuDNN" not in err


def test_blocks_open_in_two_threads_share_one_redirection(capfd, monkeypatch):
    """A native line written by a thread after another thread's block has ended is still filtered
    (the CI failure of stop 28: mediapipe's delegate line escaped onto the terminal)."""
    import os
    import threading

    from mer_keras.native import quiet_native_stderr

    monkeypatch.setenv("MER_KERAS_USER_TF_LOG", "")
    monkeypatch.delenv("MER_KERAS_VERBOSE", raising=False)
    inside, first_done = threading.Event(), threading.Event()

    def native_thread():
        with quiet_native_stderr():
            inside.set()
            first_done.wait(10)  # the main thread's block has ended; this one is still open
            os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
            os.write(2, b"kept from the thread\n")

    worker = threading.Thread(target=native_thread)
    with quiet_native_stderr():
        worker.start()
        inside.wait(10)
        with quiet_native_stderr():  # nested in the same thread
            os.write(2, b"kept from the main thread\n")
    first_done.set()
    worker.join(10)
    err = capfd.readouterr().err
    assert "XNNPACK" not in err and "INFO" not in err
    assert "kept from the thread" in err and "kept from the main thread" in err
