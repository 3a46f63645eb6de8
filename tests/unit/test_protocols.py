import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mer_keras.data.protocols import LOSO


@given(st.lists(st.sampled_from([f"s{i}" for i in range(8)]), min_size=2, max_size=60))
def test_no_subject_in_both_train_and_test(subjects):
    if len(set(subjects)) < 2:
        with pytest.raises(ValueError, match="at least 2 subjects"):
            LOSO().folds(subjects)
        return
    folds = LOSO().folds(subjects)
    arr = np.asarray(subjects)
    assert len(folds) == len(set(subjects))
    seen = np.zeros(len(subjects), int)
    for f in folds:
        assert set(arr[f.train]).isdisjoint(set(arr[f.test]))
        assert set(arr[f.test]) == {f.name}
        assert len(f.train) + len(f.test) == len(subjects)
        seen[f.test] += 1
    assert (seen == 1).all()  # every sample is tested exactly once


def test_subset_of_folds():
    folds = LOSO().folds(["a", "a", "b", "c"], only=["b"])
    assert [f.name for f in folds] == ["b"] and list(folds[0].train) == [0, 1, 3]
    with pytest.raises(ValueError, match="unknown subject"):
        LOSO().folds(["a", "b"], only=["z"])
