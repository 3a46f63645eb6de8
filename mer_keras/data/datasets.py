"""The dataset table: one :class:`DatasetSpec` row per ``--data`` value. Jobs ask the row, never the name.

Built-in rows (their classes are each database's standard set):

* ``casme2``: 5 classes (happiness, surprise, disgust, repression, others).
* ``samm``: 5 classes (anger, contempt, happiness, surprise, other).
* ``smic``: 3 classes (negative, positive, surprise), HS camera.
* ``casme``: 4 classes (disgust, repression, surprise, tense).
* ``casme_sq``: CAS(ME)^2 micro-expressions: negative, positive, surprise, others.
* ``casme3``: CAS(ME)^3 Part A, 7 emotions. ``mmew``: 6 classes (anger dropped).
* ``4dme``: positive, negative, surprise, repression, others.
* ``composite``: MEGC2019 SMIC-HS + CASME II + SAMM in 3 classes; ``root`` holds the three
  databases as ``CASME2/``, ``SAMM/`` and ``SMIC/``.
* ``megc2019-flow``: the MEGC2019 composite as published flow images (STSTNet / HTNet layout,
  :mod:`mer_keras.data.megc2019_flow`); ``root`` holds the CSV and the image folder.
* ``manifest``: a CSV (``root`` is its path); classes are the labels found, sorted.
* ``synthetic``: the embedded default, rendered on first use and cached
  (:mod:`mer_keras.data.synthetic`): negative, positive, surprise.

Every loader gives the one record type :class:`~mer_keras.data.records.Dataset`. A new dataset is
one loader module and one :func:`register_dataset` call (docs/CONTRIBUTING.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mer_keras import names
from mer_keras.data import (
    casme,
    casme2,
    casme3,
    casme_sq,
    composite,
    fourdme,
    manifest,
    megc2019_flow,
    mmew,
    samm,
    smic,
)
from mer_keras.data.checks import check_records
from mer_keras.data.database import describe
from mer_keras.data.records import Dataset, Sample
from mer_keras.errors import DataError, OptionError, UnknownNameError


@dataclass(frozen=True)
class DatasetSpec:
    """What the job steps know of one dataset.

    Attributes:
        name: the ``--data`` value, e.g. ``"casme2"``.
        load: ``load(root, *, strict, apex_policy, cache_dir, **extra) -> Dataset``; ``extra`` holds
            ``synthetic``, ``faces`` and ``progress`` for a generated set, ``standard_classes=False``
            for a side of a cross-database run (every emotion kept); a loader ignores what it does
            not use.
        classes: the class set the loader keeps, in label order; ``None``: the labels found.
        protocols: the ``--protocol`` values it runs (``cross``: it can be either side of a
            cross-database run, relabelled to the composite's classes).
        parts: the databases its subjects come from, when not only itself (the composite's three):
            transfer from a model trained on any of them would leak test subjects.
        generated: rendered by the package (the embedded synthetic set): needs no root, takes the
            synthetic options, and is the default of evaluation and export checks.
        fixed_input: the input the data already is, for ready images without frames:
            ``{"representation": "flow", "flow_encoding": "minmax", "size": 28, "what": "optical-flow
            images", "why": "..."}``: a model must take that representation, is trained on that encoding
            (``size``: the images' side in pixels); ``None``: videos or frames, any representation.
        window: the sliding window (``metadata.json`` ``window``) a model trained on ready images
            uses on video, where no frame counts exist to measure it.
        citation: where the data comes from.
    """

    name: str
    load: Callable[..., Dataset]
    classes: tuple[str, ...] | None = None
    protocols: tuple[str, ...] = ("loso",)
    parts: tuple[str, ...] = ()
    generated: bool = False
    fixed_input: dict | None = None
    window: dict | None = None
    citation: str = ""

    @property
    def databases(self) -> frozenset[str]:
        """The databases whose subjects it holds: its ``parts``, or itself."""
        return frozenset(self.parts or (self.name,))


_TABLE: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add ``spec`` to the table (and its name to the names ``--data`` accepts).

    Raises:
        ValueError: the name is taken, or a protocol is not one of :data:`mer_keras.names.PROTOCOLS`.
    """
    if spec.name in _TABLE:
        raise ValueError(f"dataset {spec.name!r} is already registered")
    unknown = set(spec.protocols) - set(names.PROTOCOLS)
    if unknown:
        raise ValueError(f"dataset {spec.name!r}: unknown protocols {sorted(unknown)}; expected {names.PROTOCOLS}")
    _TABLE[spec.name] = spec
    names.add_extension("datasets", spec.name)
    return spec


def dataset_spec(name: str) -> DatasetSpec:
    """The row of ``name``.

    Raises:
        UnknownNameError: no dataset of that name (the message lists the registered ones).
    """
    try:
        return _TABLE[name]
    except KeyError:
        raise UnknownNameError(f"unknown dataset {name!r}; expected one of {tuple(_TABLE)}") from None


def registered_datasets() -> list[DatasetSpec]:
    """Every row, in registration order (the built-in ones first)."""
    return list(_TABLE.values())


def find_dataset(name: str | None) -> DatasetSpec | None:
    """The row of ``name``, or ``None`` (no name, or a name outside the table such as a
    cross-database run's ``casme2-to-samm``)."""
    return _TABLE.get(name) if name else None


def databases_of(name: str) -> frozenset[str]:
    """The databases whose subjects a dataset name holds (a cross-database run's: both sides')."""
    out: set[str] = set()
    for part in name.split("-to-"):
        spec = find_dataset(part)
        out |= spec.databases if spec else {part}
    return frozenset(out)


def _keep(result: Dataset, classes) -> list[Sample]:
    return [s for s in result.samples if s.label in classes]


def single_database(name: str, module) -> Callable[..., Dataset]:
    """The loader of one database's module (``module.load(root, strict=, apex_policy=)`` giving its
    records, ``module.CLASSES`` the standard class set kept): a :attr:`DatasetSpec.load`. With
    ``standard_classes=False`` every emotion is kept (the cross-database protocol relabels them)."""

    def load(root, *, strict: bool = False, apex_policy: str = "midpoint", standard_classes: bool = True,
             **_) -> Dataset:
        r = module.load(root, strict=strict, apex_policy=apex_policy)
        samples = _keep(r, module.CLASSES) if standard_classes else list(r.samples)
        return Dataset(name, list(module.CLASSES), samples, skipped=r.skipped)

    return load


def _load_composite(root, *, strict: bool = False, apex_policy: str = "midpoint", **_) -> Dataset:
    base = Path(root) if root is not None else None
    parts = [casme2.load(base / "CASME2" if base else None, strict=strict, apex_policy=apex_policy),
             samm.load(base / "SAMM" if base else None, strict=strict, apex_policy=apex_policy),
             smic.load(base / "SMIC" if base else None, strict=strict, apex_policy=apex_policy)]
    samples, counts = composite.composite([s for p in parts for s in p.samples])
    return Dataset("composite", list(composite.CLASSES), samples, skipped=[x for p in parts for x in p.skipped],
                   counts=counts)


def _load_megc2019_flow(root, *, strict: bool = False, **_) -> Dataset:
    return megc2019_flow.load(root, strict=strict)


def _load_manifest(root, *, strict: bool = False, apex_policy: str = "midpoint", cache_dir=None, **_) -> Dataset:
    if root is None:
        raise OptionError("--data manifest needs --root pointing at the manifest CSV")
    clips, images = manifest.load(root, strict=strict, apex_policy=apex_policy, cache_dir=cache_dir)
    classes = sorted({s.label for s in clips.samples} | {i.label for i in images})
    return Dataset("manifest", classes, clips.samples, images=images, skipped=clips.skipped, warnings=clips.warnings)


def load_synthetic(config=None, faces=None, cache_dir=None,
                   progress: Callable[[int, int], None] | None = None) -> Dataset:
    """The embedded synthetic set (rendered on first use, then read from the cache).

    Args:
        config: a :class:`mer_keras.data.synthetic.SyntheticConfig` (default: its defaults).
        faces: folder of extra face photos. cache_dir: cache root (default
            :func:`mer_keras.preprocess.cache.default_cache_dir`). progress: (done, total) callback.
    """
    from mer_keras.data.synthetic import CLASSES, SyntheticConfig, synthetic_dataset
    from mer_keras.preprocess.cache import default_cache_dir

    root, samples = synthetic_dataset(config or SyntheticConfig(), faces_dir=faces,
                                      cache_dir=default_cache_dir(cache_dir), progress=progress)
    return Dataset("synthetic", list(CLASSES), samples, root=str(root))


def _load_generated(root, *, cache_dir=None, synthetic=None, faces=None, progress=None, **_) -> Dataset:
    return load_synthetic(synthetic, faces, cache_dir, progress)


register_dataset(DatasetSpec("synthetic", _load_generated, ("negative", "positive", "surprise"), generated=True,
                             citation="the package's own generator (mer_keras.data.synthetic)"))
for _name, _module, _cite in (
        ("casme2", casme2, "Yan et al., PLoS ONE 2014"), ("samm", samm, "Davison et al., IEEE TAC 2018"),
        ("smic", smic, "Li et al., IEEE FG 2013"), ("casme", casme, "Yan et al., IEEE FG 2013"),
        ("casme_sq", casme_sq, "Qu et al., IEEE TAC 2018"), ("casme3", casme3, "Li et al., IEEE TPAMI 2023"),
        ("mmew", mmew, "Ben et al., IEEE TPAMI 2022"), ("4dme", fourdme, "Li et al., IEEE TAC 2023")):
    register_dataset(DatasetSpec(_name, single_database(_name, _module), tuple(_module.CLASSES), ("loso", "cross"),
                                 citation=_cite))
register_dataset(DatasetSpec("composite", _load_composite, tuple(composite.CLASSES), ("loso", "composite"),
                             parts=("casme2", "samm", "smic"), citation="See et al., MEGC 2019, IEEE FG 2019"))
register_dataset(DatasetSpec(
    "megc2019-flow", _load_megc2019_flow, tuple(megc2019_flow.CLASSES), parts=("casme2", "samm", "smic"),
    fixed_input={"representation": "flow", "flow_encoding": "minmax", "size": 28, "what": "optical-flow images",
                 "why": "the published composite flow images are min-max encoded per image"},
    window=dict(megc2019_flow.WINDOW), citation="STSTNet (Liong et al., IEEE FG 2019) flow images"))
register_dataset(DatasetSpec("manifest", _load_manifest, None, ("loso", "cross")))

_missing = set(names.DATASETS) - set(_TABLE)
if _missing:
    raise RuntimeError(f"mer_keras.names.DATASETS lists {sorted(_missing)}, which the dataset table has no row for")


def load_cross(train: str, train_root, test: str, test_root, strict: bool = False,
               apex_policy: str = "midpoint") -> Dataset:
    """The records of the cross-database protocol: a training and a test database in the composite's classes.

    Records are relabelled with :data:`mer_keras.data.composite.CROSS_LABEL_MAP` (emotions outside
    it are dropped); a dataset whose classes are the labels found (a manifest) keeps its labels as
    written, which must be those classes.

    Returns:
        One :class:`Dataset` named ``<train>-to-<test>``: the training records first, then the
        test database's, whose name is in ``test_databases``.
    Raises:
        OptionError: the same database on both sides, or a dataset that cannot be a side. DataError: a
            side without a sample in the composite's classes.
    """
    if (train, str(train_root)) == (test, str(test_root)):
        raise OptionError(f"cross-database protocol needs two different datasets, got {train} twice")
    sides = []
    for name, root in ((train, train_root), (test, test_root)):
        spec = find_dataset(name)
        if spec is None or "cross" not in spec.protocols:
            raise OptionError(f"cross-database protocol takes single databases or a manifest, not {name!r}")
        loaded = spec.load(root, strict=strict, apex_policy=apex_policy, standard_classes=False)
        if spec.classes is None:
            samples = [s for s in loaded.samples if s.label in composite.CLASSES]
        else:
            samples = composite.relabel(loaded.samples, composite.CROSS_LABEL_MAP)
        if not samples:
            raise DataError(f"{name}: no sample in the classes {composite.CLASSES} under {root}")
        sides.append((name, samples, loaded.skipped))
    (_, train_samples, train_skipped), (_, test_samples, test_skipped) = sides
    return Dataset(f"{train}-to-{test}", list(composite.CLASSES), train_samples + test_samples,
                   skipped=train_skipped + test_skipped, test_databases=(test,))


def load_dataset(name: str, root=None, strict: bool = False, apex_policy: str = "midpoint", cache_dir=None,
                 synthetic=None, faces=None, progress: Callable[[int, int], None] | None = None) -> Dataset:
    """Load a dataset of the table with its standard class set, its records checked
    (:func:`mer_keras.data.checks.check_records`; a generated set is made consistent by construction).

    Args:
        name: a registered name (:data:`mer_keras.names.DATASETS` and extensions). root: its folder
            (a manifest: the CSV); default ``$MER_DATA_ROOT/<DB>``. strict: stop at the first bad
            record instead of skipping it. apex_policy: where a sheet gives no apex (``midpoint`` | ``spot``).
        synthetic, faces, progress: the synthetic set's config, extra face photos and progress
            callback (a generated set only).
    Raises:
        OptionError: unknown name. DataError: no usable sample. MissingFileError: missing root or files.
    """
    spec = find_dataset(name)
    if spec is None:
        raise OptionError(f"unknown dataset {name!r}; expected one of {tuple(_TABLE)}")
    ds = spec.load(root, strict=strict, apex_policy=apex_policy, cache_dir=cache_dir, synthetic=synthetic,
                   faces=faces, progress=progress)
    if spec.generated:
        return ds
    if not ds.samples and not ds.images:
        first = f"; first: {describe(*ds.skipped[0])}" if ds.skipped else ""
        raise DataError(f"{name}: no usable sample under {root} ({len(ds.skipped)} skipped{first})")
    return check_records(ds, strict)
