"""Where the cache lives: the root folder of generated sets, decoded videos and per-clip arrays."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir(override: str | os.PathLike | None = None) -> Path:
    """``override`` if given, else ``$MER_CACHE_DIR``, else ``~/.cache/mer_keras``."""
    if override:
        return Path(override)
    return Path(os.environ.get("MER_CACHE_DIR", Path.home() / ".cache" / "mer_keras"))
