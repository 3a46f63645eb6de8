"""One table of the datasets ``mer-keras train --data`` accepts, with their standard class sets.

Each entry loads records and applies the standard protocol's label set:

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

Every loader gives the one record type :class:`~mer_keras.data.records.Dataset`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

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
from mer_keras.data.database import describe
from mer_keras.data.records import Dataset, Sample
from mer_keras.errors import DataError, OptionError
from mer_keras.names import DATASETS  # noqa: F401  (re-exported)

#: database name -> loader module (each has ``load(root, strict=...)`` and ``CLASSES``).
SINGLE = {"casme2": casme2, "samm": samm, "smic": smic, "casme": casme, "casme_sq": casme_sq, "casme3": casme3,
          "mmew": mmew, "4dme": fourdme}


def _keep(result: Dataset, classes) -> list[Sample]:
    return [s for s in result.samples if s.label in classes]


def load_cross(train: str, train_root, test: str, test_root, strict: bool = False,
               apex_policy: str = "midpoint") -> Dataset:
    """The records of the cross-database protocol: a training and a test database in the composite's classes.

    Records are relabelled with :data:`mer_keras.data.composite.CROSS_LABEL_MAP` (emotions outside
    it are dropped); a manifest's labels are kept as written and must be those classes.

    Returns:
        One :class:`Dataset` named ``<train>-to-<test>``: the training records first, then the
        test database's, whose name is in ``test_databases``.
    Raises:
        OptionError: the same database on both sides, or an unknown name. DataError: a side
            without a sample in the composite's classes.
    """
    if (train, str(train_root)) == (test, str(test_root)):
        raise OptionError(f"cross-database protocol needs two different datasets, got {train} twice")
    sides = []
    for name, root in ((train, train_root), (test, test_root)):
        if name not in SINGLE and name != "manifest":
            raise OptionError(f"cross-database protocol takes single databases or a manifest, not {name!r}")
        if name == "manifest":
            clips, _ = manifest.load(root, strict=strict, apex_policy=apex_policy)
            samples, skipped = [s for s in clips.samples if s.label in composite.CLASSES], clips.skipped
        else:
            r = SINGLE[name].load(root, strict=strict, apex_policy=apex_policy)
            samples, skipped = composite.relabel(r.samples, composite.CROSS_LABEL_MAP), r.skipped
        if not samples:
            raise DataError(f"{name}: no sample in the classes {composite.CLASSES} under {root}")
        sides.append((name, samples, skipped))
    (_, train_samples, train_skipped), (_, test_samples, test_skipped) = sides
    return Dataset(f"{train}-to-{test}", list(composite.CLASSES), train_samples + test_samples,
                   skipped=train_skipped + test_skipped, test_databases=(test,))


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


def load_dataset(name: str, root=None, strict: bool = False, apex_policy: str = "midpoint", cache_dir=None,
                 synthetic=None, faces=None, progress: Callable[[int, int], None] | None = None) -> Dataset:
    """Load a dataset of :data:`DATASETS` with its standard class set.

    Args:
        name: one of :data:`DATASETS`. root: its folder (a manifest: the CSV); default
            ``$MER_DATA_ROOT/<DB>``. strict: stop at the first bad record instead of skipping it.
        apex_policy: where a sheet gives no apex (``midpoint`` | ``spot``).
        synthetic, faces, progress: the synthetic set's config, extra face photos and progress
            callback (``synthetic`` only).
    Raises:
        OptionError: unknown name. DataError: no usable sample. MissingFileError: missing root or files.
    """
    if name == "synthetic":
        return load_synthetic(synthetic, faces, cache_dir, progress)
    if name in SINGLE:
        module = SINGLE[name]
        r = module.load(root, strict=strict, apex_policy=apex_policy)
        ds = Dataset(name, list(module.CLASSES), _keep(r, module.CLASSES), skipped=r.skipped)
    elif name == "composite":
        base = Path(root) if root is not None else None
        parts = [casme2.load(base / "CASME2" if base else None, strict=strict, apex_policy=apex_policy),
                 samm.load(base / "SAMM" if base else None, strict=strict, apex_policy=apex_policy),
                 smic.load(base / "SMIC" if base else None, strict=strict, apex_policy=apex_policy)]
        samples, counts = composite.composite([s for p in parts for s in p.samples])
        ds = Dataset(name, list(composite.CLASSES), samples, skipped=[x for p in parts for x in p.skipped],
                     counts=counts)
    elif name == "megc2019-flow":
        ds = megc2019_flow.load(root, strict=strict)
    elif name == "manifest":
        if root is None:
            raise OptionError("--data manifest needs --root pointing at the manifest CSV")
        clips, images = manifest.load(root, strict=strict, apex_policy=apex_policy, cache_dir=cache_dir)
        classes = sorted({s.label for s in clips.samples} | {i.label for i in images})
        ds = Dataset(name, classes, clips.samples, images=images, skipped=clips.skipped, warnings=clips.warnings)
    else:
        raise OptionError(f"unknown dataset {name!r}; expected one of {DATASETS}")
    if not ds.samples and not ds.images:
        first = f"; first: {describe(*ds.skipped[0])}" if ds.skipped else ""
        raise DataError(f"{name}: no usable sample under {root} ({len(ds.skipped)} skipped{first})")
    return check_records(ds, strict)


def check_records(ds: Dataset, strict: bool = False) -> Dataset:
    """``ds`` with one spelling per database and subject (:func:`mer_keras.data.identities.unify`),
    duplicated records kept once (:func:`mer_keras.data.checks.drop_duplicates`), the same content
    under two records found (:func:`mer_keras.data.checks.content_duplicates`) and each clip's notes
    (files left out of its frames) collected: all of it in ``ds.warnings``; with ``strict`` a
    warning is an error.

    Raises:
        DataError: ids that differ by separators or leading zeros only; the same record with two
            labels; with ``strict``, any warning.
    """
    import dataclasses

    from mer_keras.data.checks import content_duplicates, drop_duplicates, raise_if_strict
    from mer_keras.data.identities import folded, unify

    n = len(ds.samples)
    sources = [s.source or s.key for s in ds.samples] + [r.source or r.path for r in ds.images]
    databases, w_db = unify([s.database for s in ds.samples] + [r.dataset for r in ds.images], sources, "database")
    subjects, w_subject = unify([s.subject for s in ds.samples] + [r.subject for r in ds.images], sources, "subject",
                                scope=[folded(d) for d in databases])
    if w_db or w_subject:
        ds.samples = [dataclasses.replace(s, database=d, subject=sub)
                      for s, d, sub in zip(ds.samples, databases[:n], subjects[:n])]
        ds.images = [dataclasses.replace(r, dataset=d, subject=sub)
                     for r, d, sub in zip(ds.images, databases[n:], subjects[n:])]
        if ds.counts:  # per-database counts of a composite: of the unified ids
            ds.counts = {d: {"samples": len(mine), "subjects": len({s.subject for s in mine}),
                             **{c: sum(s.label == c for s in mine) for c in ds.classes}}
                         for d in dict.fromkeys(s.database for s in ds.samples)
                         for mine in [[s for s in ds.samples if s.database == d]]}
    ds.samples, w1 = drop_duplicates(ds.samples, lambda s: (s.database, tuple(s.frame_paths), s.onset, s.apex,
                                                            s.offset), lambda s: s.label, lambda s: s.source)
    ds.images, w2 = drop_duplicates(ds.images, lambda r: (r.dataset, r.path), lambda r: r.label, lambda r: r.source)
    notes = list(dict.fromkeys(note for s in ds.samples for note in s.notes))  # a shared folder said once
    ds.warnings = [*ds.warnings, *w_db, *w_subject, *w1, *w2, *content_duplicates(ds), *notes]
    raise_if_strict(ds.warnings, strict, "data")
    return ds


def apply_class_map(ds: Dataset, classes: Sequence[str], class_map: dict[str, str] | str | None,
                    what: str) -> tuple[Dataset, dict[str, int]]:
    """``ds`` with every record's label one of ``classes`` (a model's), nothing dropped silently.

    A label already in ``classes`` stays. Others go through ``class_map``
    (:func:`~mer_keras.data.composite.parse_class_map`): ``"composite"`` maps each database's
    emotions as the MEGC2019 composite does (an emotion outside it, e.g. CASME II's *others*, is
    left out), a dict maps label -> class (an empty class leaves the label out).

    Args:
        what: the option that supplied the data, for messages (e.g. ``"--data casme2"``).
    Returns:
        (the dataset relabelled, its ``classes`` set to ``classes``; {original label: clips left out}).
    Raises:
        OptionError: labels that are not classes and that the map does not cover (named, with their
            counts), or a map target that is not a class.
    """
    import dataclasses
    from collections import Counter

    classes = list(classes)
    if isinstance(class_map, dict):
        bad = sorted({t for t in class_map.values() if t and t not in classes})
        if bad:
            raise OptionError(f"--class-map: targets {bad} are not classes of the model ({', '.join(classes)})")

    def new_label(label: str, emotion: str, database: str) -> str | None | bool:
        if label in classes:
            return label
        if class_map == composite.COMPOSITE_MAP:
            mapped = composite.CROSS_LABEL_MAP.get(database, {}).get(emotion or label)
            return None if mapped is None else (mapped if mapped in classes else False)
        if isinstance(class_map, dict) and label.lower() in class_map:
            return class_map[label.lower()] or None
        return False  # not covered: an error

    left_out, uncovered = Counter(), Counter()

    def relabelled(records, emotion_of, database_of) -> list:
        kept = []
        for record in records:
            label = new_label(record.label, emotion_of(record), database_of(record))
            if label is False:
                uncovered[record.label] += 1
            elif label is None:
                left_out[record.label] += 1
            else:
                kept.append(dataclasses.replace(record, label=label))
        return kept

    samples = relabelled(ds.samples, lambda s: s.emotion, lambda s: s.database)
    images = relabelled(ds.images, lambda r: "", lambda r: r.dataset)
    if uncovered:
        listed = ", ".join(f"{k} ({n})" for k, n in sorted(uncovered.items()))
        raise OptionError(f"{what}: labels {listed} are not classes of the model ({', '.join(classes)}); map them with "
                          "--class-map FROM=TO (FROM= leaves a label out), or --class-map composite")
    if not samples and not images:
        raise OptionError(f"{what}: no clip left in the model's classes ({', '.join(classes)}) after --class-map")
    return dataclasses.replace(ds, classes=classes, samples=samples, images=images), dict(left_out)
