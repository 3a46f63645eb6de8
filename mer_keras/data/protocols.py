"""Evaluation protocols, kept separate from the data.

Leave-one-subject-out (LOSO) is the standard MER protocol (e.g. MEGC2019, See et al., FG 2019):
each subject is the test set of one fold and never appears in its training set. Metrics are
computed on the predictions of all folds pooled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


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


class LOSO:
    """Leave-one-subject-out: one fold per distinct subject, in sorted order.

    Subjects of different databases must be given distinct names (``Sample.database/subject``),
    so a composite of databases never merges two people.
    """

    name = "loso"

    def folds(self, subjects: Sequence[str], only: Sequence[str] | None = None) -> list[Fold]:
        """Split sample indices by subject.

        Args:
            subjects: subject of each sample (length N).
            only: optional subset of subjects whose folds to return (others still train).
        Returns:
            Folds with disjoint train/test; every sample is in exactly one test set when ``only``
            is None.
        Raises:
            ValueError: fewer than 2 subjects, or an unknown subject in ``only``.
        """
        subjects = np.asarray(subjects, dtype=str)
        names = sorted(set(subjects.tolist()))
        if len(names) < 2:
            raise ValueError(f"LOSO needs at least 2 subjects, got {names}")
        if only is not None:
            unknown = sorted(set(only) - set(names))
            if unknown:
                raise ValueError(f"unknown subject(s) {unknown}; known: {names}")
            names = [n for n in names if n in set(only)]
        idx = np.arange(len(subjects))
        return [Fold(n, idx[subjects != n], idx[subjects == n]) for n in names]


PROTOCOLS = {"loso": LOSO}
