"""The run folder's export files: one exporting process at a time (the lock), staged writes moved into
place, stale temporaries of killed exports cleaned, and each export recorded in metadata.json.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from mer_keras import atomic
from mer_keras.export.formats import FORMATS

#: How long an export waits for the run's lock before it gives up (the lock is held for the few
#: milliseconds of a merge by another export; longer only by a process that trains in the folder).
LOCK_WAIT_SECONDS = 120.0


#: An export's staging folder: ``.export-<host>-<pid>-<mkdtemp's 8 characters>``.
_STAGING = re.compile(r"^\.export-(?P<host>.+)-(?P<pid>\d+)-[a-z0-9_]{8}$")


#: A folder set aside while a SavedModel is replaced (``.saved_model.old-<pid>``, :func:`_install`).
_SET_ASIDE = re.compile(r"^\.(?P<name>.+)\.old-(?P<pid>\d+)$")


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (a PermissionError means it does, as another user)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # OverflowError: a number no process id reaches
        return False
    except PermissionError:
        return True
    return True


def _lock_holder(run: Path) -> dict:
    """The ``RUN/.lock`` record (pid, host, started), or {} when there is none or it is being written."""
    import json

    from mer_keras.runs import LOCK_FILE

    try:
        holder = json.loads((run / LOCK_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


@contextlib.contextmanager
def run_lock(run: str | Path, timeout: float = LOCK_WAIT_SECONDS) -> Iterator[None]:
    """Hold the run folder's lock (:meth:`mer_keras.runs.RunFolder.lock`), waiting for another
    process that holds it, up to ``timeout`` seconds. Re-entrant: a process that holds it already
    (an export called from within a job that locked the run) goes on.

    Raises:
        RunFolderError: still held by another process after ``timeout`` s (names it, and the lock file).
    """
    from mer_keras.errors import RunFolderError
    from mer_keras.runs import LOCK_FILE, RunFolder

    run = Path(run)
    holder = _lock_holder(run)
    if holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
        yield
        return
    deadline, delay = time.monotonic() + timeout, 0.01
    while True:
        lock = RunFolder(run).lock("exporting")
        try:
            lock.__enter__()
            break
        except RunFolderError:
            if time.monotonic() >= deadline:
                holder = _lock_holder(run)
                raise RunFolderError(f"{run}: another mer-keras process (pid {holder.get('pid')} on "
                                     f"{holder.get('host')}, since {holder.get('started')}) has held the run folder's "
                                     f"lock for over {timeout:g} s; wait for it and export again (if that process is "
                                     f"gone, delete {run / LOCK_FILE})") from None
            time.sleep(delay)
            delay = min(2 * delay, 0.05)
    try:
        yield
    finally:
        lock.__exit__(None, None, None)


def _legacy_temporaries() -> re.Pattern:
    """Names of the temporaries :mod:`mer_keras.atomic` makes for an export's outputs
    (``.model_fp32.XXXXXXXX.tflite``, ``.saved_model.XXXXXXXX``, ``.metadata.XXXXXXXX.json`` ...)."""
    names = [f.filename for f in FORMATS.values()] + ["metadata.json", "export_report.json"]
    alternatives = [re.escape(f".{Path(n).stem}.") + "[a-z0-9_]{8}" + re.escape(Path(n).suffix) for n in names]
    return re.compile("^(?:" + "|".join(alternatives) + ")$")


def clean_stale_temporaries(run: str | Path) -> list[str]:
    """Remove what killed exports left in a run folder; call it holding the run's lock (:func:`run_lock`).

    Removed: staging folders of this host whose process is gone; export folders set aside while a
    SavedModel was replaced by a process that is gone (put back when the new one never arrived);
    and the temporary files and folders (:func:`_legacy_temporaries`) of exports of earlier
    versions, which wrote without the lock: while this process holds it, no export or training
    writes them. A staging folder of a live process, or of another host, is left alone.

    Returns:
        The names removed (or put back), for the console.
    """
    run, host, done = Path(run), socket.gethostname(), []
    legacy, outputs = _legacy_temporaries(), {f.filename for f in FORMATS.values()}
    for entry in sorted(run.iterdir()):
        name = entry.name
        staging, aside = _STAGING.match(name), _SET_ASIDE.match(name)
        if staging:
            if staging["host"] != host or _alive(int(staging["pid"])):
                continue
            shutil.rmtree(entry, ignore_errors=True)
        elif aside and aside["name"] in outputs and entry.is_dir():
            if _alive(int(aside["pid"])):
                continue
            target = run / aside["name"]
            if not target.exists():  # killed between the two renames: the old folder is the one there was
                os.replace(entry, target)
                done.append(f"{name} (put back as {target.name})")
                continue
            shutil.rmtree(entry, ignore_errors=True)
        elif legacy.match(name):
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        else:
            continue
        done.append(name)
    return done


def _install(staged: Path, dest: Path) -> Path:
    """Move a staged export file or folder onto ``dest`` in the run folder (call it holding the lock).

    A file is renamed over the old one; a folder replaces the old one by two renames (the old set
    aside as ``.<name>.old-<pid>``, then removed; :func:`clean_stale_temporaries` puts it back if
    the process is killed in between).
    """
    if staged.is_file():
        os.replace(staged, dest)
    else:
        atomic.replace_folder(staged, dest)
    return dest


def record_export(run: Path, name: str, info: dict, window=...) -> None:
    """Merge one export into the run's ``metadata.json`` (``files[name]``: info without the
    verification; ``window``, unless ``...``, when it has no window key yet) and
    ``export_report.json`` (``[name]``: info),
    each read as it is now and written atomically. Call it holding the run's lock, so that exports
    running at once each add their entry rather than the last one's file replacing the others'.

    Raises:
        ModelFileError: either file is no longer a JSON object (named).
    """
    from mer_keras.models.io import read_json

    report_path = run / "export_report.json"
    report = read_json(report_path) if report_path.exists() else {}
    report[name] = info
    meta = read_json(run / "metadata.json")
    files = meta.get("files")
    meta["files"] = {**(files if isinstance(files, dict) else {}),
                     name: {k: v for k, v in info.items() if k != "verification"}}
    if window is not ...:
        meta.setdefault("window", window)
    atomic.write_json(report_path, report)
    atomic.write_json(run / "metadata.json", meta)  # after every file: metadata always matches the disk
