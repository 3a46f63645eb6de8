"""Nested selection (``mer-keras tune``): no outer test subject ever reaches its own inner loop."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mer_keras.errors import OptionError
from mer_keras.train.nested import choose, inner_folds, parse_space, recipes, subject_groups


@settings(max_examples=40, deadline=None)
@given(n_subjects=st.integers(4, 20), clips=st.lists(st.integers(1, 6), min_size=20, max_size=20),
       n_groups=st.integers(3, 6))
def test_an_outer_groups_inner_folds_never_hold_its_subjects(n_subjects, clips, n_groups):
    n_groups = min(n_groups, n_subjects)
    subjects = [f"s{i}" for i in range(n_subjects) for _ in range(clips[i])]
    group_of = subject_groups(subjects, n_groups)
    assert sorted(set(group_of.values())) == list(range(n_groups)) and set(group_of) == set(subjects)
    subj = np.array(subjects)
    for outer in range(n_groups):
        folds = inner_folds(subjects, group_of, outer)
        assert len(folds) == n_groups - 1
        held = {s for s in subjects if group_of[s] == outer}
        for f in folds:
            assert not held & set(subj[f.train]) and not held & set(subj[f.test])
            assert not set(subj[f.train]) & set(subj[f.test])
        # every other clip is validated exactly once
        val = np.concatenate([f.test for f in folds])
        assert sorted(val) == [i for i, s in enumerate(subjects) if group_of[s] != outer]
    final = inner_folds(subjects, group_of, None)
    assert sorted(np.concatenate([f.test for f in final])) == list(range(len(subjects)))


def test_the_search_space_is_parsed_and_checked():
    space = parse_space(["lr=5e-4,1e-3", "epochs=40,80", "shift=0,2", "augment=on,off"])
    assert space == {"lr": [5e-4, 1e-3], "epochs": [40, 80], "shift": [0, 2], "augment": [True, False]}
    assert recipes(space)[:3] == [{"lr": 5e-4, "shift": 0, "augment": True}, {"lr": 5e-4, "shift": 0, "augment": False},
                                  {"lr": 5e-4, "shift": 2, "augment": True}]
    assert len(recipes(space)) == 8 and recipes({"epochs": [1]}) == [{}]
    for bad, why in [(["dropout=0.1"], "cannot be searched"), (["lr=0"], "not a valid lr"), (["lr"], "KEY=V1"),
                     (["epochs=2.5"], "not a valid epochs"), (["lr=1e-3,1e-3"], "repeated"),
                     (["lr=1e-3", "lr=2e-3"], "twice"), (["augment=maybe"], "not a valid augment")]:
        with pytest.raises(OptionError, match=why):
            parse_space(bad)


def test_the_choice_is_the_best_inner_uf1_and_the_cheaper_on_a_tie():
    rows = [{"recipe": {"lr": 1}, "epochs": 40, "uf1": 0.5, "uar": 0.5}, {"recipe": {"lr": 1}, "epochs": 80, "uf1": 0.6,
                                                                           "uar": 0.5},
            {"recipe": {"lr": 2}, "epochs": 40, "uf1": 0.6, "uar": 0.5}, {"recipe": {"lr": 2}, "epochs": 80, "uf1": 0.6,
                                                                           "uar": 0.7}]
    assert choose(rows) is rows[3]
    assert choose(rows[:3]) is rows[1]


def _layout(root: Path, n_subjects: int = 9, clips: int = 3) -> Path:
    from mer_keras.data import megc2019_flow

    (root / megc2019_flow.IMAGE_DIR).mkdir(parents=True)
    lines = ["dataset,sub,filename_o,label,apex,imagename,sub_filename\n"]
    for s in range(n_subjects):
        for c in range(clips):
            img = np.full((28, 28, 3), 8 * s + c, np.uint8)  # pixel value = the clip's identity
            lines.append(f"{('casme2', 'samm', 'smic')[s % 3]},s{s},c{c},{c % 3},,x.jpg,\n")
            cv2.imwrite(str(megc2019_flow.image_path(root, f"s{s}", f"c{c}")), img)
    (root / megc2019_flow.SHEET).write_text("".join(lines))
    return root


def test_no_outer_test_subject_reaches_its_inner_loop(tmp_path, monkeypatch):
    """The whole tune job with training replaced by a recorder: every fit of the inner loop that
    chose a test subject's recipe holds none of that subject's clips, in training or validation;
    each test subject is scored with its own group's choice, by a fit without it."""
    import mer_keras.train.folds as folds_module
    from mer_keras.jobs.tune import TuneOptions, tune

    fits = []

    def recording_run_folds(x, y, folds, classes, cfg, strategy=None, fold_callbacks=None, on_fold_end=None,
                            aus=None, completed=None, backup_root=None, checkpoints=None):
        probs = np.full((len(x), len(classes)), np.nan, np.float32)
        marks = {}
        for f in folds:
            clip_ids = {int(v) for v in np.unique(x[f.train][..., 0])}
            fits.append({"name": f.name, "train": clip_ids, "test": {int(v) for v in np.unique(x[f.test][..., 0])},
                         "lr": cfg.lr, "epochs": cfg.epochs, "inner": bool(checkpoints)})
            p = np.eye(len(classes), dtype=np.float32)[(np.arange(len(f.test)) + int(cfg.lr * 1e4)) % len(classes)]
            probs[f.test] = p
            marks[f.name] = {e: p for e in checkpoints or ()}
            if on_fold_end:
                on_fold_end(f, p, {"subject": f.name, "n_train": len(f.train), "n_test": len(f.test), "accuracy": 0.0,
                                   "uf1": 0.0, "uar": 0.0, "final_train_loss": None, "final_train_accuracy": None})
        out = {"probabilities": probs, "folds": [], "parallel_folds": 1}
        return {**out, "checkpoints": marks} if checkpoints else out

    monkeypatch.setattr(folds_module, "run_folds", recording_run_folds)
    opts = TuneOptions(data="megc2019-flow", root=str(_layout(tmp_path / "data")), model="ststnet", final=False,
                       export=False, out=str(tmp_path / "runs"), groups=3,
                       space=parse_space(["lr=1e-4,2e-4", "epochs=2,4"]))
    run = tune(opts)
    selection = json.loads((run / "selection.json").read_text())
    groups = selection["groups"]
    assert len(groups) == 9 and sorted(set(groups.values())) == [0, 1, 2]
    clip_ids_of = {f"{('casme2', 'samm', 'smic')[s % 3]}/{('casme2', 'samm', 'smic')[s % 3]}_s{s}":
                   {8 * s + c for c in range(3)} for s in range(9)}
    inner = [f for f in fits if f["inner"]]
    assert len(inner) == 2 * 3 * 2  # recipes x outer groups x inner folds
    for subject, g in groups.items():
        own = [f for f in inner if f["name"].startswith(f"outer{g}/")]
        assert len(own) == 4
        for f in own:
            assert not clip_ids_of[subject] & (f["train"] | f["test"]), (subject, f["name"])
        outer = [f for f in fits if not f["inner"] and f["name"] == subject]
        assert len(outer) == 1 and outer[0]["test"] == clip_ids_of[subject]
        assert not clip_ids_of[subject] & outer[0]["train"]
        choice = selection["choice"][str(g)]
        assert selection["per_subject"][subject] == {**choice["recipe"], "epochs": choice["epochs"]}
        assert (outer[0]["lr"], outer[0]["epochs"]) == (choice["recipe"]["lr"], choice["epochs"])
    assert len(selection["inner_scores"]) == 2 * 3 * 2  # recipes x outer groups x epoch counts
    results = json.loads((run / "results.json").read_text())
    assert results["selection"]["per_subject"] == selection["per_subject"] and results["n_samples"] == 27

    # another seed of the same selection: no inner loop, the same choices
    from dataclasses import replace

    fits.clear()
    again = tune(replace(opts, seed=1, selection_from=str(run)))
    assert not [f for f in fits if f["inner"]] and len(fits) == 9
    reused = json.loads((again / "selection.json").read_text())
    assert reused["per_subject"] == selection["per_subject"] and reused["reused_from"] == str(run)
    with pytest.raises(OptionError, match="space"):
        tune(replace(opts, selection_from=str(run), space=parse_space(["lr=1e-4", "epochs=2"])))
    with pytest.raises(OptionError, match="--recipe paper sets epochs, which tune searches"):
        tune(replace(opts, recipe="paper", space=None))  # the default space searches the recipe's epochs


def test_a_killed_tune_resumes_without_scoring_a_finished_recipe_again(tmp_path, monkeypatch):
    import mer_keras.train.folds as folds_module
    from mer_keras.jobs.tune import TuneOptions, tune

    calls = []

    def run_folds(x, y, folds, classes, cfg, strategy=None, fold_callbacks=None, on_fold_end=None, aus=None,
                  completed=None, backup_root=None, checkpoints=None):
        calls.append((cfg.shift, bool(checkpoints)))
        if checkpoints and len([c for c in calls if c[1]]) == 2 and not getattr(run_folds, "resumed", False):
            raise KeyboardInterrupt  # killed while scoring the second recipe
        p = np.full((len(x), len(classes)), 1 / len(classes), np.float32)
        for f in folds:
            if on_fold_end:
                on_fold_end(f, p[f.test], {"subject": f.name})
        out = {"probabilities": p, "folds": [], "parallel_folds": 1}
        return {**out, "checkpoints": {f.name: {e: p[f.test] for e in checkpoints} for f in folds}} \
            if checkpoints else out

    monkeypatch.setattr(folds_module, "run_folds", run_folds)
    opts = TuneOptions(data="megc2019-flow", root=str(_layout(tmp_path / "data")), model="ststnet", final=False,
                       export=False, out=str(tmp_path / "runs"), groups=3, space=parse_space(["shift=0,2", "epochs=2"]))
    with pytest.raises(KeyboardInterrupt):
        tune(opts)
    run = next((tmp_path / "runs").iterdir())
    assert [p.name for p in (run / "inner").iterdir()] == ["recipe-0.json"]
    calls.clear()
    run_folds.resumed = True
    tune(TuneOptions(resume=str(run)))
    assert [c for c in calls if c[1]] == [(2, True)]  # only the second recipe is scored again
    assert json.loads((run / "results.json").read_text())["n_samples"] == 27


@pytest.mark.slow  # 13-40 s; the inner loop's other guarantees are tested by default above
@pytest.mark.parametrize("parallel", [1, 0], ids=["one_at_a_time", "folds_at_once"])
def test_a_checkpoint_prediction_is_the_prediction_of_the_shorter_fit(parallel):
    """What the inner loop relies on: the probabilities predicted after epoch e of a longer fit are
    those of a fit of e epochs (each epoch's batches, flips and dropout masks depend only on the
    seed and the epoch), and after the last epoch they are the fit's own."""
    from mer_keras.data.protocols import Fold
    from mer_keras.train.config import TrainConfig
    from mer_keras.train.folds import run_folds

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (24, 28, 28, 3)).astype(np.float32)
    y = np.arange(24) % 3
    folds = [Fold(f"s{k}", np.flatnonzero(np.arange(24) // 8 != k), np.flatnonzero(np.arange(24) // 8 == k))
             for k in range(3)]
    classes = ["negative", "positive", "surprise"]
    cfg = TrainConfig(model="ststnet", epochs=3, batch_size=8, flow_input=True, parallel_folds=parallel)
    long = run_folds(x, y, folds, classes, cfg, checkpoints=[2, 3])
    short = run_folds(x, y, folds, classes, TrainConfig(**{**cfg.to_dict(), "epochs": 2}))
    for f in folds:
        np.testing.assert_allclose(long["checkpoints"][f.name][3], long["probabilities"][f.test], atol=1e-6)
        np.testing.assert_allclose(long["checkpoints"][f.name][2], short["probabilities"][f.test], atol=1e-5)
