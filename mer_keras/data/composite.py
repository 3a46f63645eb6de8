"""The MEGC2019 composite database: SMIC-HS + CASME II + SAMM in three classes.

Source: J. See, M. H. Yap, J. Li, X. Hong, S.-J. Wang, "MEGC 2019 - The Second Facial
Micro-Expressions Grand Challenge", IEEE FG 2019. Emotions are mapped to negative / positive /
surprise; the rest (CASME II others, fear, sadness; SAMM other) are dropped. On the complete
databases this gives SMIC-HS 164 + CASME II 145 + SAMM 133 = 442 samples from 16 + 24 + 28 = 68
subjects.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from mer_keras.data.records import Dataset, Sample
from mer_keras.errors import DataError, OptionError

CLASSES = ("negative", "positive", "surprise")

LABEL_MAP: dict[str, dict[str, str]] = {
    "smic": {"negative": "negative", "positive": "positive", "surprise": "surprise"},
    "casme2": {"disgust": "negative", "repression": "negative", "happiness": "positive", "surprise": "surprise"},
    "samm": {"anger": "negative", "contempt": "negative", "disgust": "negative", "fear": "negative",
             "sadness": "negative", "happiness": "positive", "surprise": "surprise"},
}

#: The shared label map of the cross-database protocol: the composite's classes for every database.
CROSS_LABEL_MAP: dict[str, dict[str, str]] = {
    **LABEL_MAP,
    "casme": {"disgust": "negative", "repression": "negative", "fear": "negative", "sadness": "negative",
              "contempt": "negative", "happiness": "positive", "surprise": "surprise"},
    "casme3": {"disgust": "negative", "fear": "negative", "anger": "negative", "sad": "negative",
               "happy": "positive", "surprise": "surprise"},
    "mmew": {"disgust": "negative", "fear": "negative", "sadness": "negative", "anger": "negative",
             "happiness": "positive", "surprise": "surprise"},
    "4dme": {"negative": "negative", "positive": "positive", "surprise": "surprise"},
    "casme_sq": {"negative": "negative", "positive": "positive", "surprise": "surprise"},
}

#: Samples and subjects of each complete database in the composite.
EXPECTED = {"smic": (164, 16), "casme2": (145, 24), "samm": (133, 28)}


def relabel(samples: Iterable[Sample], label_map: dict[str, dict[str, str]]) -> list[Sample]:
    """Apply a per-database emotion -> class map; samples whose emotion is not mapped are dropped."""
    out = []
    for s in samples:
        label = label_map.get(s.database, {}).get(s.emotion)
        if label is not None:
            out.append(dataclasses.replace(s, label=label))
    return out


def composite(samples: Iterable[Sample]) -> tuple[list[Sample], dict[str, dict[str, int]]]:
    """The composite set and its counts per database.

    Args:
        samples: records of SMIC (HS), CASME II and SAMM as loaded (emotion as written).
    Returns:
        (relabelled samples, {database: {"samples", "subjects", "negative", "positive", "surprise"}}).
    Raises:
        DataError: when a database is complete (as many subjects as the real one) but its sample
            count differs from MEGC2019's, which means a mapping or loading error.
    """
    out = relabel(samples, LABEL_MAP)
    counts: dict[str, dict[str, int]] = {}
    for db in LABEL_MAP:
        mine = [s for s in out if s.database == db]
        counts[db] = {"samples": len(mine), "subjects": len({s.subject for s in mine}),
                      **{c: sum(s.label == c for s in mine) for c in CLASSES}}
        n_expected, subjects_expected = EXPECTED[db]
        if counts[db]["subjects"] == subjects_expected and counts[db]["samples"] != n_expected:
            raise DataError(f"composite: {db} has all {subjects_expected} subjects but {counts[db]['samples']} "
                            f"samples instead of {n_expected}; check the label map and the coding sheet")
    total = sum(c["samples"] for c in counts.values())
    if all(counts[db]["subjects"] == EXPECTED[db][1] for db in EXPECTED) and total != 442:
        raise DataError(f"composite: {total} samples instead of 442")
    return out, counts


#: ``--class-map composite``: each database's emotions to the MEGC2019 composite classes
#: (:data:`CROSS_LABEL_MAP`); other emotions are left out, and counted.
COMPOSITE_MAP = "composite"


def parse_class_map(items: Sequence[str] | None) -> dict[str, str] | str | None:
    """``--class-map composite`` or ``--class-map FROM=TO`` (repeatable; ``FROM=`` leaves FROM out).

    Raises:
        OptionError: an item that is neither ``composite`` nor FROM=TO, or ``composite`` mixed with pairs.
    """
    if not items:
        return None
    if list(items) == [COMPOSITE_MAP]:
        return COMPOSITE_MAP
    mapping = {}
    for item in items:
        source, sep, target = item.partition("=")
        if not sep or not source.strip():
            raise OptionError(f"--class-map {item!r}: expected 'composite' or FROM=TO (e.g. happiness=positive; "
                              "FROM= leaves FROM out)")
        mapping[source.strip().lower()] = target.strip().lower()
    return mapping


def apply_class_map(ds: Dataset, classes: Sequence[str], class_map: dict[str, str] | str | None,
                    what: str) -> tuple[Dataset, dict[str, int]]:
    """``ds`` with every record's label one of ``classes`` (a model's), nothing dropped silently.

    A label already in ``classes`` stays. Others go through ``class_map``
    (:func:`parse_class_map`): ``"composite"`` maps each database's
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
        if class_map == COMPOSITE_MAP:
            mapped = CROSS_LABEL_MAP.get(database, {}).get(emotion or label)
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
