"""``mer-keras data prepare``: preprocess every clip of a dataset once, into the per-clip cache."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mer_keras.data.datasets import load_dataset
from mer_keras.data.pipeline import RepresentationConfig, config_key, prepare
from mer_keras.errors import DataError

#: What ``data prepare`` builds by default: the inputs of the registered models.
DEFAULT_REPRESENTATIONS = (RepresentationConfig("dynamic_image", 112), RepresentationConfig("apex", 112),
                           RepresentationConfig("flow", 28))


@dataclass
class PrepareReport:
    """Outcome of a prepare run.

    Attributes:
        dataset: name. folders: cache folder of each representation. prepared: usable clips.
        counts: {(subject, class): clips}. skipped: (where, why) from loading and preprocessing.
        warnings: what was decided about the data (:mod:`mer_keras.data.checks`).
    """

    dataset: str
    folders: dict[str, Path] = field(default_factory=dict)
    prepared: int = 0
    counts: Counter = field(default_factory=Counter)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def prepare_dataset(name: str, root, cache_dir: Path,
                    representations: Sequence[RepresentationConfig] = DEFAULT_REPRESENTATIONS,
                    workers: int = 1, strict: bool = False,
                    progress: Callable[[str, int, int], None] | None = None) -> PrepareReport:
    """Load a dataset and build every representation of every clip into the cache.

    Raises:
        MissingFileError, DataError: bad root or sheet; with ``strict``, the first bad clip (DataError).
    """
    ds = load_dataset(name, root, strict=strict, cache_dir=cache_dir)
    report = PrepareReport(ds.name, skipped=list(ds.skipped), warnings=list(ds.warnings))
    errors = prepare(ds.samples, list(representations), cache_dir, workers=workers,
                     progress=(lambda d, t: progress("all representations", d, t)) if progress else None)
    if errors and strict:
        i = min(errors)
        raise DataError(f"{ds.samples[i].source or ds.samples[i].key}: {errors[i]}")
    for rep in representations:
        report.folders[config_key(rep)] = Path(cache_dir) / "clips" / config_key(rep)
    report.skipped += [(ds.samples[i].source or ds.samples[i].key, errors[i]) for i in sorted(errors)]
    good = [s for i, s in enumerate(ds.samples) if i not in errors]
    report.prepared = len(good)
    report.counts = Counter((f"{s.database}/{s.subject}", s.label) for s in good)
    return report

