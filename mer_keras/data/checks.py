"""Checks that keep a metric from changing silently: label spellings, duplicated records, classes a
fold never trains on.

Each problem gets an explicit decision:

* **label spellings** that differ only by case, spaces, invisible characters or number format
  (``Positive `` and ``positive``, ``1`` and ``1.0``) are one class, spelled as most rows spell
  it: a *warning* naming the rows; **subject and database ids** likewise
  (:mod:`mer_keras.data.identities`), where ids that differ by separators or leading zeros only
  (``sub2``, ``sub_02``) are an *error*;
* **the same content under two records** (the same file bytes, or for ready images the same
  decoded pixels): a *warning* naming both, a LOSO leak when the subjects differ;
* **files beside a clip's frames that do not follow their naming** (``img12 - Copy.jpg``): left
  out, a *warning* naming them;
* **near-duplicate labels** (``postive`` beside ``positive``: a similarity of at least
  :data:`TYPO_SIMILARITY`) are an *error* that suggests the intended label;
* **duplicated records** (the same clip, the same frames and onset / apex / offset, or the same
  ready image, twice) are kept once: a *warning* naming both rows; the same record with two
  different labels is an *error*;
* **a class absent from a fold's training subjects** (present only in its test subject): a
  *warning* per fold;
* **ready-image rows beside clip rows** in one manifest (the images are fed as they are, the clips
  as the model's representation): a *warning* (``mer_keras.data.manifest``).

Warnings are printed, written to ``results.json`` (``warnings``), and with ``strict`` they are
errors (:func:`raise_if_strict`).
"""

from __future__ import annotations

import difflib
from collections import Counter, defaultdict
from collections.abc import Sequence

from mer_keras.errors import DataError

#: Labels at least this similar (difflib ratio, after case and spaces are folded) are taken for a typo.
TYPO_SIMILARITY = 0.8


def fold_label(label: str) -> str:
    """A label with case, spaces, invisible characters and number format folded:
    ``" Positive  "`` -> ``"positive"``, ``"1.0"`` -> ``"1"``
    (:func:`mer_keras.data.identities.folded_label`)."""
    from mer_keras.data.identities import folded_label

    return folded_label(label)


def rows_of(sources: Sequence[str]) -> str:
    """``file:2, 5, 9`` for sources ``file:2``, ``file:5``, ``file:9`` (at most 6 listed)."""
    files = defaultdict(list)
    for s in sources:
        f, _, row = str(s).rpartition(":")
        files[f or s].append(row)
    parts = [f"{f}:{', '.join(rows[:6])}{' ...' if len(rows) > 6 else ''}" for f, rows in files.items()]
    return "; ".join(parts)


def unify_labels(labels: Sequence[str], sources: Sequence[str]) -> tuple[list[str], list[str]]:
    """One spelling per label, and no near-duplicate labels.

    Args:
        labels: the label of each record as written. sources: each record's ``file:row``.
    Returns:
        (the labels with spelling variants replaced by the most frequent spelling, warnings).
    Raises:
        DataError: two labels that look like one with a typo (names the rows, suggests the label
            with more rows).
    """
    counts = Counter(labels)
    spellings = defaultdict(list)
    for label in counts:
        spellings[fold_label(label)].append(label)
    chosen, warnings = {}, []
    for folded, variants in spellings.items():
        best = max(variants, key=lambda v: (counts[v], v == folded, v))
        for v in variants:
            chosen[v] = best
        if len(variants) > 1:
            others = [v for v in variants if v != best]
            rows = [s for label, s in zip(labels, sources) if label in others]
            warnings.append(f"labels {', '.join(repr(v) for v in sorted(variants))} differ only by case, spaces, "
                            f"invisible characters or number format: read as one class {best!r} ({rows_of(rows)})")
    unified = [chosen[label] for label in labels]
    n = Counter(unified)
    names = sorted(n, key=lambda v: (-n[v], v))
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if difflib.SequenceMatcher(None, fold_label(a), fold_label(b)).ratio() >= TYPO_SIMILARITY:
                rows = [s for label, s in zip(unified, sources) if label == b]
                raise DataError(f"{rows_of(rows)}: label {b!r} ({n[b]} record(s)) looks like a typo of {a!r} "
                                f"({n[a]} record(s)); correct it, or give the two classes names that differ more")
    return unified, warnings


def drop_duplicates(items: Sequence, identity, label, source) -> tuple[list, list[str]]:
    """The records of ``items`` with exact duplicates kept once.

    Args:
        identity, label, source: functions of a record: what makes it the same input (frames,
            onset, apex, offset; or the image file), its label, its ``file:row``.
    Returns:
        (records kept, in order; warnings naming each duplicate).
    Raises:
        DataError: the same input listed with two different labels (names both rows).
    """
    first, kept, warnings = {}, [], []
    for item in items:
        key = identity(item)
        if key in first:
            prev = first[key]
            if label(prev) != label(item):
                raise DataError(f"{source(item)}: the same record as {source(prev)} with another label "
                                f"({label(item)!r} against {label(prev)!r}); one of the two rows is wrong")
            warnings.append(f"{source(item)}: the same record as {source(prev)}; counted once")
            continue
        first[key] = item
        kept.append(item)
    return kept, warnings


def untrained_classes(folds, labels: Sequence[str], classes: Sequence[str]) -> list[str]:
    """Warnings for folds whose test subject holds a class no training record has.

    Args:
        folds: the protocol's folds (``name``, ``train`` and ``test`` index arrays).
        labels: the label of each record. classes: the class names.
    """
    out = []
    for fold in folds:
        trained = {labels[i] for i in fold.train}
        missing = Counter(labels[i] for i in fold.test if labels[i] not in trained)
        for c in classes:
            if missing.get(c):
                out.append(f"fold {fold.name}: class {c!r} has no training record ({missing[c]} test record(s) of it "
                           "can only be misclassified)")
    return out


def raise_if_strict(warnings: Sequence[str], strict: bool, what: str) -> None:
    """With ``strict``, the first warning as a DataError (``what`` says where they came from)."""
    if strict and warnings:
        more = f" (and {len(warnings) - 1} more)" if len(warnings) > 1 else ""
        raise DataError(f"{warnings[0]}{more} [--strict: {what} warnings are errors]")


def check_finite_inputs(x, what: str, names: Sequence[str] | None = None) -> None:
    """Refuse network inputs that hold NaN or infinite values, naming the first such sample.

    A NaN input makes the training loss NaN some steps later, at a step that depends on the batch
    order and on the CPU's arithmetic; found here, before any training, the error names the sample
    and says it is the data, not the learning rate.

    Args:
        x: (N, ...) float array of N samples' inputs.
        what: what the inputs are for, at the start of the message (``fold sub02``, ``QAT fine-tuning``).
        names: per sample, what names it for the user (its file or clip); default ``sample i of N``.
    Raises:
        DataError: ``"<what>: input <name> holds NaN values (...); ..."`` for the first bad sample,
            with the count of bad samples.
    """
    import numpy as np

    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating) or x.size == 0:
        return
    finite = np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    if finite.all():
        return
    bad = np.flatnonzero(~finite)
    i = int(bad[0])
    values = x[i]
    kinds = [k for k, present in (("NaN", np.isnan(values).any()), ("infinite", np.isinf(values).any())) if present]
    name = names[i] if names is not None else f"sample {i + 1} of {len(x)}"
    more = f" (and {len(bad) - 1} more sample(s))" if len(bad) > 1 else ""
    raise DataError(f"{what}: input {name} holds {' and '.join(kinds)} values{more}; network inputs must be finite "
                    "numbers: check the file it was made from (nothing was trained on it)")


def content_duplicates(ds) -> list[str]:
    """Records whose inputs are the same content under another name: a copied image or clip.

    Clips are compared by the bytes of their onset and apex frame files, ready images by their
    bytes and by their decoded pixels (a PNG copy of the same picture). Two records of different
    subjects with the same content put a test clip into training under leave-one-subject-out.

    Args:
        ds: a :class:`~mer_keras.data.records.Dataset` (its ``samples`` and ``images``).
    Returns:
        One warning per record whose content an earlier record already had, naming both.
    """
    import hashlib

    import numpy as np

    from mer_keras.preprocess.images import read_image

    def file_digest(path: str) -> str | None:
        try:
            with open(path, "rb") as fh:
                return hashlib.sha256(fh.read()).hexdigest()
        except OSError:  # an unreadable file is named when the clip is built
            return None

    seen: dict[str, tuple[str, str, str]] = {}
    warnings = []

    def check(key: str | None, subject: str, source: str, what: str) -> bool:
        if key is None:
            return False
        if key in seen:
            other_subject, other_source, other_what = seen[key]
            leak = (f"under subjects {other_subject} and {subject}: leave-one-subject-out would train on a test clip"
                    if other_subject != subject else f"of subject {subject}, counted twice")
            warnings.append(f"{source}: {what} as {other_source} ({other_what}) {leak}")
            return True
        seen[key] = (subject, source, what)
        return False

    for s in ds.samples:
        digests = [file_digest(s.frame_paths[i]) for i in (s.onset, s.apex)]
        if None not in digests:
            check("clip:" + "".join(digests), f"{s.database}/{s.subject}", s.source or s.key,
                  "the same onset and apex frame files (same bytes)")
    for r in ds.images:
        where, who = r.source or r.path, f"{r.dataset}/{r.subject}"
        if check("image:" + (file_digest(r.path) or r.path), who, where, "the same image file (same bytes)"):
            continue
        try:
            pixels = np.ascontiguousarray(read_image(r.path))
        except Exception:  # noqa: BLE001 - an unreadable image is named when it is read for the model
            continue
        check(f"pixels:{pixels.shape}:" + hashlib.sha256(pixels.tobytes()).hexdigest(), who, where,
              "the same picture (same decoded pixels)")
    return warnings


def check_records(ds, strict: bool = False):
    """``ds`` (a :class:`~mer_keras.data.records.Dataset`, changed in place and returned) with one
    spelling per database and subject (:func:`mer_keras.data.identities.unify`),
    duplicated records kept once (:func:`mer_keras.data.checks.drop_duplicates`), the same content
    under two records found (:func:`mer_keras.data.checks.content_duplicates`) and each clip's notes
    (files left out of its frames) collected: all of it in ``ds.warnings``; with ``strict`` a
    warning is an error.

    Raises:
        DataError: ids that differ by separators or leading zeros only; the same record with two
            labels; with ``strict``, any warning.
    """
    import dataclasses

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
