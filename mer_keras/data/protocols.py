"""Evaluation protocols, kept separate from the data: each is an object with ``folds()`` and ``report()``.

* :class:`LOSO`: leave-one-subject-out, the standard MER protocol (e.g. MEGC2019, See et al.,
  FG 2019): each subject is the test set of one fold and never appears in its training set.
* :class:`Composite`: LOSO on the MEGC2019 composite (SMIC-HS + CASME II + SAMM, 3 classes),
  reported pooled and per source database, as MEGC2019 scores it.
* :class:`CrossDatabase`: train on one database, test on another (one fold).

Metrics are computed on the predictions of all folds pooled (:meth:`Protocol.report`).
A subject is named ``<database>/<subject>`` so a composite of databases never merges two people.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mer_keras import names
from mer_keras.errors import OptionError


def fold_stem(fold_name: str) -> str:
    """A fold's name as a file or folder name: ``casme2/casme2_sub01`` -> ``casme2__casme2_sub01``
    (fold files, training histories, backups and TensorBoard logs of a run)."""
    return fold_name.replace("/", "__")


@dataclass(frozen=True)
class Fold:
    """One train/test split.

    Attributes:
        name: the held-out subject (or group) name.
        train, test: int64 index arrays into the sample list; disjoint.
    """

    name: str
    train: np.ndarray
    test: np.ndarray


class Protocol(ABC):
    """How records are split into folds and how the pooled predictions are reported.

    Subclasses define :meth:`groups` (the fold group of each record) and :meth:`folds`.
    """

    name = ""
    #: Whether the protocol's folds are its subjects (``--folds sub01`` picks some of them).
    per_subject = True

    def groups(self, rows: Sequence[dict], test_databases: Sequence[str] = ()) -> list[str]:
        """The group of each record: ``<database>/<subject>``.

        Args:
            rows: per record {"subject", "database", ...} (:attr:`mer_keras.data.datasets.Dataset.rows`).
        """
        return [f"{r['database']}/{r['subject']}" for r in rows]

    @abstractmethod
    def folds(self, groups: Sequence[str], only: Sequence[str] | None = None) -> list[Fold]:
        """The folds over records of these groups (``only``: just the folds of those groups)."""

    def select(self, groups: Sequence[str], wanted: Sequence[str]) -> list[str]:
        """Map ``--folds`` names (``sub01`` or ``synthetic/sub01``) to group names.

        Raises:
            OptionError: a name matches no subject (the message lists the known ones).
        """
        known = sorted(set(groups))
        by_short = {g.split("/", 1)[-1]: g for g in known}
        out, unknown = [], []
        for w in wanted:
            g = w if w in known else by_short.get(w)
            (out if g else unknown).append(g or w)
        if unknown:
            raise OptionError(f"unknown subject(s) {unknown} in --folds; known: {', '.join(by_short)}")
        return out

    def report(self, y: np.ndarray, probs: np.ndarray, classes: Sequence[str], databases: Sequence[str]) -> dict:
        """Pooled metrics over every record that a finished fold tested.

        Args:
            y: (N,) int labels. probs: (N, K) float32 probabilities, NaN rows for records in no
                finished fold. databases: (N,) source database of each record.
        Returns:
            {"classes", "n_samples", "overall": {accuracy, uf1, uar}, "per_class",
            "confusion_matrix", "per_database": {db: {accuracy, uf1, uar, n}} when the tested
            records come from several databases}.
        """
        from mer_keras.metrics import compute_metrics

        classes = list(classes)
        tested = ~np.isnan(probs).any(1)
        pred = np.where(tested, np.nan_to_num(probs).argmax(1), -1)
        metrics = compute_metrics(y[tested], pred[tested], classes)
        databases = np.asarray(databases)
        per_database = {}
        if len(set(databases[tested])) > 1:  # e.g. the composite: metrics per source database too
            for db in sorted(set(databases[tested])):
                sel = tested & (databases == db)
                m = compute_metrics(y[sel], pred[sel], classes)
                per_database[db] = {k: m[k] for k in ("accuracy", "uf1", "uar")} | {"n": int(sel.sum())}
        return {"classes": classes, "n_samples": int(tested.sum()),
                "overall": {k: metrics[k] for k in ("accuracy", "uf1", "uar")},
                "per_class": metrics["per_class"], "confusion_matrix": metrics["confusion_matrix"],
                "per_database": per_database}


class LOSO(Protocol):
    """Leave-one-subject-out: one fold per distinct subject, in sorted order."""

    name = "loso"

    def folds(self, subjects: Sequence[str], only: Sequence[str] | None = None) -> list[Fold]:
        """Split sample indices by subject.

        Args:
            subjects: subject (group) of each sample (length N).
            only: optional subset of subjects whose folds to return (others still train).
        Returns:
            Folds with disjoint train/test; every sample is in exactly one test set when ``only``
            is None.
        Raises:
            OptionError: fewer than 2 subjects, or an unknown subject in ``only``.
        """
        subjects = np.asarray(subjects, dtype=str)
        names = sorted(set(subjects.tolist()))
        if len(names) < 2:
            raise OptionError(f"LOSO needs at least 2 subjects, got {names}")
        if only is not None:
            unknown = sorted(set(only) - set(names))
            if unknown:
                raise OptionError(f"unknown subject(s) {unknown}; known: {names}")
            names = [n for n in names if n in set(only)]
        idx = np.arange(len(subjects))
        return [Fold(n, idx[subjects != n], idx[subjects == n]) for n in names]


class Composite(LOSO):
    """LOSO on the MEGC2019 composite (``--data composite``), reported per source database too.

    Source: See et al., "MEGC 2019 - The Second Facial Micro-Expressions Grand Challenge", FG 2019.
    """

    name = "composite"


class CrossDatabase(Protocol):
    """Train on one database (group ``train``), test on another (group ``test``): one fold, ``test``."""

    name = "cross"
    per_subject = False

    def groups(self, rows: Sequence[dict], test_databases: Sequence[str] = ()) -> list[str]:
        """``test`` for records of ``test_databases``, ``train`` for the others."""
        return ["test" if r["database"] in test_databases else "train" for r in rows]

    def folds(self, groups: Sequence[str], only: Sequence[str] | None = None) -> list[Fold]:
        """The one fold: train on the ``train`` group, test on the ``test`` group.

        Raises:
            OptionError: one of the two groups is empty.
        """
        groups = np.asarray(groups, dtype=str)
        idx = np.arange(len(groups))
        train, test = idx[groups == "train"], idx[groups == "test"]
        if not len(train) or not len(test):
            raise OptionError(f"the cross-database protocol needs records on both sides, got {len(train)} training "
                              f"and {len(test)} test records")
        if only is not None and list(only) != ["test"]:
            return []
        return [Fold("test", train, test)]

    def select(self, groups: Sequence[str], wanted: Sequence[str]) -> list[str]:
        return ["test"]


#: Protocol name -> protocol object (``mer-keras train --protocol``).
PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (LOSO(), Composite(), CrossDatabase())}

if tuple(PROTOCOLS) != names.PROTOCOLS:  # the command line offers names.PROTOCOLS without importing this module
    raise RuntimeError(f"mer_keras.names.PROTOCOLS {names.PROTOCOLS} differs from the protocols defined here "
                       f"{tuple(PROTOCOLS)}")
