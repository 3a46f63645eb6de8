"""Atomic writes: a temporary file in the same folder, then ``os.replace``; and locks on cache entries.

A crash never leaves a half-written file that a later step would trust. Two processes that fill
one cache entry take its lock (:func:`locked`): the second waits, then finds the entry written.
What a killed writer left (its temporary file or folder, its lock file) is removed by the next
writer of that entry (:func:`remove_leftovers`) or by a sweep of the folder (:func:`sweep_leftovers`).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` (same suffix); rename it onto ``path`` on success.

    Raises:
        OSError: writing the temporary file or renaming it failed (a full disk, a read-only
            folder): ``cannot write <path>: <reason>`` (:func:`write_error`; its errno kept). The
            temporary file is removed whatever the error. OSErrors about other files pass as they are.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual permissions
    try:
        try:
            yield Path(tmp)
            os.replace(tmp, path)
        except OSError as exc:
            if exc.filename in (None, tmp, str(path)):
                raise write_error(path, exc) from exc  # a write error says the file meant, not the temporary one
            raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def replace_folder(new: Path, path: Path) -> None:
    """Put the complete folder ``new`` at ``path``: the old folder is renamed aside
    (``.<name>.old-<pid>``), ``new`` renamed into place, then the old one removed, so ``path`` is
    never a half-written folder."""
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    if path.exists():
        os.replace(path, old)
    os.replace(new, path)
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; on success it replaces ``path`` (a folder).

    The old folder is renamed aside first, then the new one into place, then the old one removed:
    at every moment ``path`` is either the complete old folder, absent for the time of two
    renames, or the complete new one; never a half-written folder.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        replace_folder(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_error(path: str | os.PathLike, cause: OSError | int | None = None, reason: str | None = None) -> OSError:
    """The error of a failed write: ``cannot write <path>: <reason>``, as the builtin subclass of its errno.

    Args:
        cause: the OSError that stopped the write (numpy's short write has no errno: ``150528
            requested and 76768 written``), an errno (``errno.ENOSPC``), or None (unknown). Without
            an errno, :func:`likely_errno` of ``path``'s folder is taken (a full disk, a read-only folder).
        reason: what to say instead of the errno's text.
    Returns:
        An OSError (PermissionError for EACCES...) whose ``errno`` is the cause's and whose message
        names ``path``; ``filename`` is left unset so that the message is shown as it is. The errno
        is also kept as ``write_errno``, which survives pickling (from a worker process), unlike
        ``errno`` on an OSError made from a message: :func:`restore_errno` puts it back.
    """
    path = Path(path)
    code = cause.errno if isinstance(cause, OSError) else cause
    said = (cause.strerror or str(cause)) if isinstance(cause, OSError) else None
    if code is None:
        code = likely_errno(path.parent)
        if code is not None and said:
            said = f"{os.strerror(code)} ({said})"
    if reason is None:
        reason = said or (os.strerror(code) if code else "the write failed")
    cls = type(OSError(code, "")) if code else OSError
    exc = cls(f"cannot write {path}: {reason}")
    exc.errno = exc.write_errno = code
    return exc


def restore_errno(exc: BaseException) -> None:
    """Give a :func:`write_error` that crossed a process boundary its ``errno`` back."""
    if isinstance(exc, OSError) and exc.errno is None and getattr(exc, "write_errno", None) is not None:
        exc.errno = exc.write_errno


def likely_errno(folder: str | os.PathLike, nbytes: int = 0) -> int | None:
    """Why a write into ``folder`` probably failed when the writer did not say (OpenCV's imwrite,
    numpy's short write): ENOSPC when its disk cannot hold ``nbytes`` more bytes or has no inode
    left, EACCES when the folder is not writable, else None."""
    try:
        st = os.statvfs(folder)
    except OSError as exc:
        return exc.errno
    if st.f_bavail * st.f_frsize <= nbytes or (st.f_files > 0 and st.f_favail == 0):
        return errno.ENOSPC
    if not os.access(folder, os.W_OK):
        return errno.EACCES
    return None


@contextmanager
def locked(path: str | os.PathLike, wait: bool = True) -> Iterator[bool]:
    """Hold an exclusive lock (``fcntl.flock``) on the lock file ``path`` for the time of the block.

    One lock per cache entry, next to it (``<entry>.lock``): a second process waits here until the
    first has written the entry, then finds it. The lock file is created (and its folder), and
    removed when the lock is released; a process that takes a lock file its holder has just
    removed notices and takes the new one, so two processes never hold one entry's lock. The lock
    is the kernel's: it is released when its holder dies, however it dies; a lock file left by a
    killed process is harmless (and removed by :func:`sweep_leftovers`).

    Args:
        wait: False: do not wait; yield False at once when another process holds the lock.
    Yields:
        True while the lock is held (False: ``wait`` is False and the lock is taken elsewhere).
    Raises:
        OSError: the lock file cannot be created (a read-only folder), named.
    """
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            held = _still_there(fd, path)
        except BlockingIOError:
            os.close(fd)
            fd = None
            break
        except BaseException:
            os.close(fd)
            raise
        if held:
            break
        os.close(fd)  # the file locked was removed by its last holder: take the one that is there now
    if fd is None:
        yield False
        return
    try:
        yield True
    finally:
        try:
            os.unlink(path)  # while still holding it: whoever opened this file sees it gone and retries
        except OSError:
            pass
        os.close(fd)


def _still_there(fd: int, path: Path) -> bool:
    """True if the open file ``fd`` is the file at ``path`` (not removed or replaced since it was opened)."""
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (now.st_ino, now.st_dev) == (mine.st_ino, mine.st_dev)


def lock_path(path: str | os.PathLike) -> Path:
    """The lock file of a cache entry: ``<path>.lock`` beside it."""
    path = Path(path)
    return path.with_name(path.name + ".lock")


#: What a killed writer leaves beside an entry: atomic_path's ``.<stem>.<8 random chars><suffix>``,
#: atomic_dir's ``.<name>.<8 random chars>`` and ``.<name>.old-<pid>`` (groups: the entry's name).
_TEMP = re.compile(r"^\.(?:(?P<stem>.+)\.[a-z0-9_]{8}(?P<suffix>\.[^.]*)?|(?P<name>.+)\.old-\d+)$")


def leftovers(path: str | os.PathLike) -> list[Path]:
    """Temporary files and folders of :func:`atomic_path` / :func:`atomic_dir` writes of ``path`` beside it.

    A live writer's temporary file looks the same: remove them only while holding ``path``'s lock.
    """
    path = Path(path)
    mine = re.compile(rf"^(?:{re.escape(f'.{path.stem}.')}[a-z0-9_]{{8}}{re.escape(path.suffix)}"
                      rf"|{re.escape(f'.{path.name}.')}(?:[a-z0-9_]{{8}}|old-\d+))$")
    try:
        return [path.parent / n for n in os.listdir(path.parent) if mine.match(n)]
    except OSError:
        return []


def remove_leftovers(path: str | os.PathLike) -> int:
    """Remove :func:`leftovers` of ``path`` (call it holding ``path``'s lock); the number removed."""
    found = leftovers(path)
    for p in found:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return len(found)


def sweep_leftovers(folder: str | os.PathLike) -> int:
    """Remove what killed writers left in ``folder``: temporary files and folders of entries that no
    process is writing now (their lock is free), and lock files no process holds.

    Best effort: a folder that cannot be listed or written (a read-only cache) is left as it is.

    Returns:
        The number of entries whose leftovers were removed.
    """
    folder = Path(folder)
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    entries = set()
    for name in names:
        m = _TEMP.match(name)
        if m and m["name"]:
            entries.add(m["name"])
        elif m:
            entries.update({m["stem"] + (m["suffix"] or ""), m["stem"]})  # a file's or a folder's temporary
        elif name.endswith(".lock"):
            entries.add(name[:-len(".lock")])
    swept = 0
    for entry in sorted(entries):
        try:
            with locked(lock_path(folder / entry), wait=False) as mine:  # removed on release when free
                if mine and remove_leftovers(folder / entry):
                    swept += 1
        except OSError:
            continue
    return swept


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_text(path, json.dumps(obj, indent=2, default=_jsonable) + "\n")


def _jsonable(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
