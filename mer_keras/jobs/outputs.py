"""Step *check outputs* of every command: the output folder and the cache can be written, before any work."""

from __future__ import annotations

from pathlib import Path


def check_writable(out: str | Path, option: str = "--out", file: bool = False) -> None:
    """Refuse an output that cannot be written, before any work (every command's first step).

    Args:
        out: the folder the command creates or fills, or with ``file`` the file it creates or
            replaces. option: how the message names it (``--out``, ``--annotate``, ``RUN``...).
    Raises:
        OptionError: naming ``option``, ``out`` and what is wrong: ``out`` (or the nearest of its
            parents that exists) is a file where a folder is needed, a folder where a file is
            written, a symbolic link to nothing or a loop of links, or a folder this process may
            not write to.
    """
    import os

    from mer_keras.errors import OptionError

    out = Path(out)
    probe = out
    while True:
        if probe.is_symlink() and not probe.exists():  # exists() follows the link: False for a loop or a dangling link
            raise OptionError(f"{option} {out}: {'' if probe == out else f'{probe} is '}a symbolic link to nothing "
                              "(or a loop of links)")
        if probe.exists() or probe.parent == probe:
            break
        probe = probe.parent
    if probe == out and file:
        if out.is_dir():
            raise OptionError(f"{option} {out}: a folder; expected a file path to write")
        folder = out.parent
    elif not probe.is_dir():
        raise OptionError(f"{option} {out}: {'' if probe == out else f'{probe} is '}a file, not a folder")
    else:
        folder = probe
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OptionError(f"{option} {out}: {folder} is not writable")


def not_a_folder(path: Path) -> str:
    """What ``path``, which is not a folder, is instead: for messages that expect a folder there."""
    if path.is_symlink() and not path.exists():
        return "a symbolic link to nothing (or a loop of links)"
    return "a file" if path.exists() else "no such folder"


def check_outputs(out: str | Path, cache_dir: str | None = None, option: str = "--out") -> None:
    """Step *check outputs* of every job: the output folder can be written (:func:`check_writable`)
    and the cache folder is one (:func:`mer_keras.preprocess.cache.default_cache_dir`), before any work.

    A cache folder that exists but is read-only is accepted (a filled cache is only read; a missing
    entry is refused when it is written, naming the path); one that does not exist yet must be
    creatable.

    Raises:
        OptionError: the first unusable one, named.
    """
    from mer_keras.preprocess.cache import default_cache_dir

    check_writable(out, option)
    cache = default_cache_dir(cache_dir)
    if not cache.is_dir():
        check_writable(cache, "--cache-dir" if cache_dir else "the cache folder")
