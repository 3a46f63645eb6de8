"""Every protocol keeps its test records out of the training split of their fold."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mer_keras.data.protocols import PROTOCOLS

records = st.lists(st.tuples(st.sampled_from(["casme2", "samm", "smic"]), st.sampled_from([f"s{i}" for i in range(6)])),
                   min_size=4, max_size=50)


@pytest.mark.parametrize("name", sorted(PROTOCOLS))
@settings(max_examples=60, deadline=None)
@given(records=records)
def test_no_test_subject_is_in_the_training_split(name, records):
    protocol = PROTOCOLS[name]
    rows = [{"database": db, "subject": s} for db, s in records]
    test_databases = ("samm",)
    groups = protocol.groups(rows, test_databases)
    if len(set(groups)) < 2:
        return
    try:
        folds = protocol.folds(groups)
    except ValueError:  # the cross protocol with one side empty refuses to run
        assert name == "cross"
        return
    people = np.array([f"{db}/{s}" for db, s in records])
    for fold in folds:
        assert set(fold.train).isdisjoint(fold.test)
        assert set(people[fold.train]).isdisjoint(people[fold.test]) or name == "cross"
        if name == "cross":  # whole databases are held out
            assert {records[i][0] for i in fold.test} == {"samm"}
            assert "samm" not in {records[i][0] for i in fold.train}


def test_report_pools_and_splits_per_database():
    protocol = PROTOCOLS["composite"]
    y = np.array([0, 1, 0, 1])
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [np.nan, np.nan]], np.float32)
    report = protocol.report(y, probs, ["a", "b"], ["casme2", "casme2", "samm", "samm"])
    assert report["n_samples"] == 3 and report["overall"]["accuracy"] == pytest.approx(2 / 3)
    assert report["per_database"]["casme2"]["accuracy"] == 1.0 and report["per_database"]["samm"]["n"] == 1
