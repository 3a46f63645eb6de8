"""``mer-keras data prepare``: preprocess every clip of a dataset once into the per-clip cache,
so that later trainings only read it.

Steps: load the dataset -> build each representation of each clip (resumable; skipped clips are
listed) -> a per-subject count table.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mer_keras.jobs.schema import option, validate
from mer_keras.names import PREPARABLE_DATASETS

if TYPE_CHECKING:  # the options are read by `mer-keras --help`, which must not load OpenCV or pandas
    from mer_keras.data.prepare import PrepareReport


@dataclass
class PrepareOptions:
    """Options of ``mer-keras data prepare``."""

    db: str = option(help="Database, composite, or manifest.", argument=True, choices=lambda: PREPARABLE_DATASETS)
    root: str | None = option(None, "Database folder (or manifest CSV); default $MER_DATA_ROOT/<DB>.")
    workers: int = option(1, "Processes (each loads its own face mesh).", min=1, max=256)
    strict: bool = option(False, "Stop at the first bad clip.")
    cache_dir: str | None = option(None, "Cache folder (default $MER_CACHE_DIR or ~/.cache/mer_keras).")
    model: list[str] | None = option(None, "Build the inputs of these models (repeatable), e.g. --model htnet "
                                     "--model au_convlstm; default: dynamic image 112, apex 112 and flow 28.")


def prepare(opts: PrepareOptions, console) -> PrepareReport:
    """Build the inputs of every clip of ``opts.db`` into the cache, with a progress bar per representation.

    Raises:
        OptionError, UnknownNameError: bad options or model names. DataError, MissingFileError:
            bad root or sheet; with ``strict``, the first bad clip. OSError: the cache cannot be
            written (named). KeyboardInterrupt: an interrupt; its ``prepared`` attribute is
            (inputs done, inputs in all) when the building had started, else None; what was
            done stays cached.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from mer_keras.data.prepare import prepare_dataset
    from mer_keras.factory import get_spec
    from mer_keras.preprocess.cache import default_cache_dir

    validate(opts)
    cache = default_cache_dir(opts.cache_dir)  # a cache path that cannot be a folder fails before any work
    if opts.db == "manifest" and opts.root and Path(opts.root).is_dir():
        from mer_keras.errors import DataError

        raise DataError(f"{opts.root}: a folder; --root of a manifest is the manifest CSV file itself")
    extra = {}
    if opts.model:
        extra["representations"] = list(dict.fromkeys(get_spec(m).data_config() for m in opts.model))
    with Progress(TextColumn("{task.description:<20}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as prog:
        tasks, last = {}, {}

        def progress(rep, done, total):
            if rep not in tasks:
                tasks[rep] = prog.add_task(rep, total=total)
            prog.update(tasks[rep], completed=done)
            last["prepared"] = (done, total)

        try:
            return prepare_dataset(opts.db, opts.root, cache, workers=opts.workers,
                                   strict=opts.strict, progress=progress, **extra)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM as the command raises it
            exc.prepared = last.get("prepared")
            raise
