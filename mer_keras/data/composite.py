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

from mer_keras.data.records import Sample
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
