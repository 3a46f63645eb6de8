"""One spelling per subject, database and label: spellings that split one thing into two.

A subject written ``casme2_sub02`` in one row and ``CASME2_SUB02`` (or with a zero-width space, a
non-breaking space or a trailing space) in another is one person. Read as two, leave-one-subject-
out tests that person on a model trained on them: a leak, and twice the folds. The same holds for
a database name (``casme2`` / ``CASME2``: the per-database figures split) and for labels (``1`` /
``1.0``: six classes instead of three).

Decisions:

* **Safe to merge**: spellings equal after Unicode NFKC, without invisible format characters
  (zero-width spaces and joiners, byte-order marks, soft hyphens), with every kind of space read
  as one space and outer spaces dropped, and case-folded; for labels also numbers written
  differently (``1``, ``1.0``, ``01``). They are one, spelled as most rows spell it; a *warning*
  names the spellings and rows.
* **Not safe to merge**: ids that differ in more than that but are equal once separators
  (spaces, ``_``, ``-``, ``.``) and leading zeros of numbers are dropped (``sub2`` / ``sub02``,
  ``sub 02`` / ``sub_02``). They may be one person written two ways or two people; an *error*
  names both and their rows.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Sequence

from mer_keras.errors import DataError

_SPACES = re.compile(r"\s+")
_SEPARATORS = re.compile(r"[\s_\-.]+")
_LEADING_ZEROS = re.compile(r"(?<!\d)0+(?=\d)")


def canonical(text) -> str:
    """``text`` in NFKC without invisible format characters (Unicode category Cf), runs of any
    whitespace as one space, outer spaces dropped; case kept."""
    s = unicodedata.normalize("NFKC", str(text))
    s = "".join(ch for ch in s if unicodedata.category(ch) != "Cf")
    return _SPACES.sub(" ", s).strip()


def folded(text) -> str:
    """:func:`canonical` and case-folded: spellings with the same ``folded`` are one id."""
    return canonical(text).casefold()


def folded_label(text) -> str:
    """:func:`folded` with a number written in its shortest form (``1.0``, ``01`` -> ``1``)."""
    s = folded(text)
    try:
        value = float(s)
    except ValueError:
        return s
    if value != value or value in (float("inf"), float("-inf")):
        return s
    return str(int(value)) if value == int(value) else repr(value)


def near(text) -> str:
    """:func:`folded` without separators and leading zeros: ids equal here but not in ``folded``
    are a near-collision (``sub2``, ``sub_02``)."""
    return _LEADING_ZEROS.sub("", _SEPARATORS.sub("", folded(text)))


def _rows(sources: Sequence[str], limit: int = 6) -> str:
    shown = ", ".join(str(s) for s in sources[:limit])
    return shown + (f" and {len(sources) - limit} more" if len(sources) > limit else "")


def unify(values: Sequence[str], sources: Sequence[str], what: str, key=folded,
          scope: Sequence[str] | None = None) -> tuple[list[str], list[str]]:
    """One spelling per id among ``values``.

    Args:
        values: each record's id as written. sources: each record's ``file:row`` (for messages).
        what: ``"subject"``, ``"database"``, ``"label"`` (for messages). key: which spellings are
            one (:func:`folded`, or :func:`folded_label` for labels).
        scope: per record, the group its id lives in (the database, for subjects); ids of two
            scopes are never merged or compared. None: one scope.
    Returns:
        (the ids with each spelling variant replaced by the most frequent spelling of its group, in
        :func:`canonical` form; one warning per merged group, naming the spellings and rows).
    Raises:
        DataError: a near-collision (:func:`near`) within a scope, naming both ids and their rows.
    """
    scope = list(scope) if scope is not None else [""] * len(values)
    counts = Counter(zip(scope, values))
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for (sc, v) in counts:
        groups[(sc, key(v))].append(v)
    chosen, warnings = {}, []
    for (sc, _), variants in groups.items():
        spellings = Counter()
        for v in variants:
            spellings[canonical(v)] += counts[(sc, v)]
        best = max(spellings, key=lambda s: (spellings[s], s == s.casefold(), s))
        for v in variants:
            chosen[(sc, v)] = best
        if len(variants) > 1:
            rows = [src for s, v, src in zip(scope, values, sources) if s == sc and v in variants and v != best]
            where = f" in {sc}" if sc else ""
            warnings.append(f"{what}s {', '.join(repr(v) for v in sorted(variants))}{where} differ only by case, "
                            f"spaces, invisible characters{' or number format' if key is folded_label else ''}: "
                            f"read as one {what} {best!r} ({_rows(rows)})")
    unified = [chosen[(sc, v)] for sc, v in zip(scope, values)]
    by_near: dict[tuple[str, str], set[str]] = defaultdict(set)
    for sc, v in zip(scope, unified):
        by_near[(sc, near(v))].add(v)
    for (sc, _), ids in by_near.items():
        if len(ids) > 1:
            a, b = sorted(ids)[:2]
            rows_a = [src for s, v, src in zip(scope, unified, sources) if s == sc and v == a]
            rows_b = [src for s, v, src in zip(scope, unified, sources) if s == sc and v == b]
            where = f" in {sc}" if sc else ""
            raise DataError(f"{what}s {a!r} ({_rows(rows_a)}) and {b!r} ({_rows(rows_b)}){where} differ only by "
                            f"separators or leading zeros: one {what} written two ways, or two {what}s? They cannot be "
                            f"merged safely; write them the same way, or as clearly different ids")
    return unified, warnings
