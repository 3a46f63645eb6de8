"""Decisions that keep a metric from changing silently: labels, duplicates, untrained classes, run locks,
fold identities."""

import json
import socket
from types import SimpleNamespace

import numpy as np
import pytest

from mer_keras.data.checks import drop_duplicates, raise_if_strict, unify_labels, untrained_classes
from mer_keras.errors import DataError, RunFolderError
from mer_keras.runs import RunFolder, check_identity


def test_spellings_that_differ_by_case_or_spaces_are_one_class_spelled_as_most_rows():
    labels = ["positive", "Positive", "positive", "negative", "POSITIVE "]
    sources = [f"m.csv:{i}" for i in range(2, 7)]
    unified, warnings = unify_labels(labels, sources)
    assert unified == ["positive", "positive", "positive", "negative", "positive"]
    assert len(warnings) == 1 and "m.csv:3, 6" in warnings[0] and "read as one class 'positive'" in warnings[0]


@pytest.mark.parametrize("typo, meant", [("postive", "positive"), ("negatve", "negative"), ("other", "others")])
def test_a_label_that_looks_like_a_typo_is_an_error_suggesting_the_intended_one(typo, meant):
    labels = [meant] * 4 + ["happiness", typo]
    with pytest.raises(DataError, match=f"m.csv:7: label '{typo}' \\(1 record\\(s\\)\\) looks like a typo of '{meant}'"):
        unify_labels(labels, [f"m.csv:{i}" for i in range(2, 8)])


def test_distinct_class_names_are_left_alone():
    labels = ["happiness", "disgust", "repression", "surprise", "fear", "sadness", "others", "negative", "positive"]
    assert unify_labels(labels, [str(i) for i in range(len(labels))]) == (labels, [])


def test_duplicates_are_kept_once_and_a_duplicate_with_another_label_is_an_error():
    rec = lambda key, label, row: SimpleNamespace(key=key, label=label, source=f"s.xlsx:{row}")  # noqa: E731
    items = [rec("a", "x", 2), rec("b", "y", 3), rec("a", "x", 4)]
    kept, warnings = drop_duplicates(items, lambda r: r.key, lambda r: r.label, lambda r: r.source)
    assert [r.source for r in kept] == ["s.xlsx:2", "s.xlsx:3"]
    assert warnings == ["s.xlsx:4: the same record as s.xlsx:2; counted once"]
    with pytest.raises(DataError, match="s.xlsx:4: the same record as s.xlsx:2 with another label"):
        drop_duplicates(items[:2] + [rec("a", "z", 4)], lambda r: r.key, lambda r: r.label, lambda r: r.source)


def test_a_class_only_in_the_test_subject_is_named_per_fold_and_strict_makes_it_an_error():
    labels = ["a", "b", "a", "b", "a", "c"]
    folds = [SimpleNamespace(name=n, train=np.array(tr), test=np.array(te))
             for n, tr, te in (("s1", [2, 3, 4, 5], [0, 1]), ("s3", [0, 1, 2, 3], [4, 5]))]
    warnings = untrained_classes(folds, labels, ["a", "b", "c"])
    assert warnings == ["fold s3: class 'c' has no training record (1 test record(s) of it can only be misclassified)"]
    raise_if_strict(warnings, False, "fold")
    with pytest.raises(DataError, match=r"\[--strict: fold warnings are errors\]"):
        raise_if_strict(warnings, True, "fold")


def test_a_run_folder_is_locked_while_a_process_trains_in_it(tmp_path):
    run = RunFolder(tmp_path)
    with run.lock():
        holder = json.loads((tmp_path / ".lock").read_text())
        assert holder["host"] == socket.gethostname()
        with pytest.raises(RunFolderError, match=f"another mer-keras process \\(pid {holder['pid']}"):
            with RunFolder(tmp_path).lock():
                pass
    assert not (tmp_path / ".lock").exists()
    # a lock whose process is gone (killed) is taken over; one from another host is not
    (tmp_path / ".lock").write_text(json.dumps({"pid": 2 ** 22 + 12345, "host": socket.gethostname()}))
    with run.lock():
        assert json.loads((tmp_path / ".lock").read_text())["pid"] != 2 ** 22 + 12345
    (tmp_path / ".lock").write_text(json.dumps({"pid": 1, "host": "elsewhere.example"}))
    with pytest.raises(RunFolderError, match="if that machine crashed, delete"):
        with run.lock():
            pass


def test_fold_identities_name_every_difference():
    saved = {"options": {"model": "learnet", "lr": 0.001}, "data": "abc"}
    check_identity("f.json", None, saved)          # fold files written before identities: accepted
    check_identity("f.json", saved, json.loads(json.dumps(saved)))
    with pytest.raises(RunFolderError, match=r"f.json: .*data 'abc' \(fold file\) vs 'xyz' \(now\); "
                                             r"options.model 'learnet' \(fold file\) vs 'htnet' \(now\)"):
        check_identity("f.json", saved, {"options": {"model": "htnet", "lr": 0.001}, "data": "xyz"})


def test_ids_are_one_spelling_and_near_collisions_are_errors():
    """Subjects, databases and labels that differ only by case, invisible characters, any kind of
    space or number format are one (warning); ids that differ by separators or leading zeros are
    an error naming both (issue 31)."""
    from mer_keras.data.identities import canonical, folded_label, near, unify
    from mer_keras.errors import DataError

    assert canonical("\ufeffsub\u200b02\u00a0") == "sub02" and canonical("ｓｕｂ０２") == "sub02"
    assert [folded_label(v) for v in ("1", "1.0", "01", " 1 ", "Positive", "nan")] == ["1"] * 4 + ["positive", "nan"]
    assert near("sub_02") == near("sub2") == near("SUB-02") == "sub2" and near("sub12") != near("sub2")
    ids, warnings = unify(["a1", "A1", "a1", "b2"], ["f:2", "f:3", "f:4", "f:5"], "subject")
    assert ids == ["a1", "a1", "a1", "b2"] and warnings == [
        "subjects 'A1', 'a1' differ only by case, spaces, invisible characters: read as one subject 'a1' (f:3)"]
    # the same id in two databases is two subjects; spellings are unified within each
    ids, warnings = unify(["s1", "S1", "s1"], ["f:2", "f:3", "f:4"], "subject", scope=["x", "x", "y"])
    assert ids == ["s1", "s1", "s1"] and len(warnings) == 1 and "in x" in warnings[0]
    with pytest.raises(DataError, match=r"^subjects 's01' \(f:3\) and 's1' \(f:2\) differ only by separators or "
                                        r"leading zeros"):
        unify(["s1", "s01"], ["f:2", "f:3"], "subject")
    assert unify(["s1", "s01"], ["f:2", "f:3"], "subject", scope=["x", "y"])[0] == ["s1", "s01"]  # other databases
