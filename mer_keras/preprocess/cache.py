"""Where the cache lives: the root folder of generated sets, decoded videos and per-clip arrays."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir(override: str | os.PathLike | None = None) -> Path:
    """``override`` if given, else ``$MER_CACHE_DIR``, else ``~/.cache/mer_keras``.

    Raises:
        OptionError: the path cannot be a folder: it, or the nearest of its parents that exists,
            is a file, or a symbolic link to nothing or a loop of links (named, with where the path
            came from). A folder that exists but is read-only is accepted: a filled cache is read.
    """
    if override:
        path, source = Path(override), "--cache-dir"
    elif os.environ.get("MER_CACHE_DIR"):
        path, source = Path(os.environ["MER_CACHE_DIR"]), "$MER_CACHE_DIR"
    else:
        path, source = Path.home() / ".cache" / "mer_keras", "the cache folder"
    probe = path
    while not probe.is_dir():
        if probe.is_symlink() and not probe.exists():
            where = "" if probe == path else f"{probe} is "
            raise _error(f"{source} {path}: {where}a symbolic link to nothing (or a loop of links)")
        if probe.exists():
            where = "" if probe == path else f"{probe} is "
            raise _error(f"{source} {path}: {where}a file, not a folder (the cache is a folder)")
        if probe.parent == probe:
            break
        probe = probe.parent
    return path


def _error(message: str) -> Exception:
    from mer_keras.errors import OptionError

    return OptionError(message)
