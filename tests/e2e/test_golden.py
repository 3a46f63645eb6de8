"""Run folders as the reference runs made them: the same files, configuration, data, labels and
figures for the same seed.

``tests/golden/*.json`` were captured with ``python -m tests.helpers.golden capture tests/golden``
(each run in a fresh process through the command line); each records the machine kind and package
versions it was captured on. Here the same two runs go through today's code (the synthetic one is
the shared ``tiny_run`` of this test session, run in-process) and are compared by
:func:`tests.helpers.golden.compare_runs`: every value on the capture's machine kind; on another
kind, trained values within a tolerance measured across CPU kinds and the decisions the reference
took by a clear margin. On every machine, each run must agree with itself (predicted classes,
figures and fold files counted from its probabilities).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from tests.helpers import golden

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
#: Files a run folder has beside its results: the training history (a CSV per fold) and its plots.
ADDED_FILES = ("history/", "learning_curves.png", "uf1_per_fold.png")


@pytest.fixture(scope="module")
def runs_now(tmp_path_factory, tiny_run):
    work = tmp_path_factory.mktemp("golden")
    cache = work / "cache"
    manifest = golden.make_manifest(work / "manifest", cache)
    return {"synthetic_default": Path(tiny_run[0]),
            "manifest": golden.train(golden.MANIFEST_ARGS + ["--root", str(manifest)], work / "runs", cache)}


@pytest.mark.parametrize("name", ["synthetic_default", "manifest"])
def test_run_folder_matches_the_reference_run(runs_now, name):
    expected = json.loads((GOLDEN / f"{name}.json").read_text())
    now = golden.summarise(runs_now[name])
    assert [f for f in now["files"] if f.startswith(ADDED_FILES)], "the added files are gone: update ADDED_FILES"
    diffs, how = golden.compare_runs(expected, now)
    if how != "same machine":
        warnings.warn(f"golden {name}: compared as on {how}", stacklevel=1)
    warnings_now = json.loads((runs_now[name] / "results.json").read_text())["warnings"]
    # the manifest mixes frame folders and ready flow images on purpose: said, not silent
    assert [w.split(": ", 1)[1][:22] for w in warnings_now] == (["mixes ready-image rows"] if name == "manifest"
                                                                else [])
    assert not diffs, f"{len(diffs)} difference(s) ({how}):\n" + "\n".join(diffs[:30])


def test_the_comparison_is_as_strict_as_the_machines_allow():
    """On the capture's machine every digit counts; on another, a trained value may move within the
    cross-machine tolerance, a near-tie decision may flip, and a clear decision may not."""
    def run(p0, p1, pred, margin_row=None):
        rows = [{"subject": "s1", "clip": "c1", "database": "db", "label": "a", "prediction": pred,
                 "p_a": str(p0), "p_b": str(p1)}]
        probs = [[p0, p1]]
        m = 1.0 if pred == "a" else 0.0
        return {"predictions": rows, "folds": {"db__s1.json": {"test_keys": ["db/s1/c1"], "labels": ["a"],
                                                               "probabilities": probs,
                                                               "row": {"accuracy": m, "uf1": m, "uar": m}}},
                "results.json": {"classes": ["a", "b"], "overall": {"accuracy": m, "uf1": m, "uar": m},
                                 "confusion_matrix": [[int(m), int(1 - m)], [0, 0]]}}

    here = {"machine_kind": "cpu X", "packages": {"tensorflow": "1"}}
    other = {"machine_kind": "cpu Y", "packages": {"tensorflow": "1"}}
    ref = {"machine": here, **run(0.7, 0.3, "a")}
    assert golden.compare_runs(ref, run(0.7, 0.3, "a"), here) == ([], "same machine")
    assert golden.compare_runs(ref, run(0.7002, 0.2998, "a"), here)[0]  # 2e-4 is a difference here ...
    assert golden.compare_runs(ref, run(0.7002, 0.2998, "a"), other)[0] == []  # ... not on another machine
    assert golden.compare_runs(ref, run(0.69, 0.31, "a"), other)[0]  # 1e-2 is one everywhere
    tie = {"machine": here, **run(0.5004, 0.4996, "a")}
    diffs, how = golden.compare_runs(tie, run(0.4996, 0.5004, "b"), other)
    assert diffs == [] and "1 near-tie decision(s) left out" in how
    assert golden.compare_runs(tie, run(0.4996, 0.5004, "b"), here)[0]
    # a run whose figures do not follow from its own probabilities fails on every machine
    broken = run(0.7, 0.3, "a")
    broken["results.json"]["overall"]["uf1"] = 0.5
    assert any("overall uf1" in d for d in golden.compare_runs(ref, broken, other)[0])


def test_compare_sees_a_changed_probability():
    a = {"folds": {"x.json": {"probabilities": [[0.5, 0.5]]}}}
    b = {"folds": {"x.json": {"probabilities": [[0.5, 0.51]]}}}
    assert golden.compare(a, a) == [] and golden.compare(a, b) == ["/folds/x.json/probabilities[0][1]: 0.5 != 0.51"]
    assert golden.compare(a, b, loose={"probabilities": 0.02}) == []
    assert golden.compare(a, b, loose={"parity": 0.02}) != []
