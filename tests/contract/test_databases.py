"""Loaders on fixture trees in the official layouts: records field by field, quirks, bad clips."""

from pathlib import Path

import numpy as np
import pytest

from mer_keras.data import casme2, composite, manifest, samm, smic
from mer_keras.data.pipeline import RepresentationConfig, build_inputs
from mer_keras.data.sheets import parse_aus, parse_frame_number
from tests.helpers.db_fixtures import CASME2_GOOD, make_casme2, make_samm, make_smic


@pytest.fixture(scope="module")
def trees(tmp_path_factory, tiny_synthetic):
    _, samples = tiny_synthetic
    base = tmp_path_factory.mktemp("dbs")
    return {"casme2": make_casme2(base / "CASME2", samples), "samm": make_samm(base / "SAMM_root", samples),
            "smic": make_smic(base / "SMIC_root", samples)}


def test_casme2_records(trees):
    res = casme2.load(trees["casme2"])
    assert len(res.samples) == CASME2_GOOD
    s = res.samples[0]
    assert (s.subject, s.clip_id, s.database, s.fps, s.emotion, s.aus) == (
        "sub01", "EP02_01f", "casme2", 200.0, "disgust", ("AU4", "AU7"))
    assert s.frame_numbers == (46, 47, 48, 49, 50, 51)
    assert (s.onset, s.apex, s.offset) == (0, 2, 5)
    assert s.frame_paths[0].endswith("CASME2_RAW_selected/sub01/EP02_01f/img46.jpg")
    assert s.source.endswith("CASME2-coding-20140508.xlsx:2")
    t = res.samples[1]  # '/' apex -> midpoint; img8..img13 sorted by number, not lexically
    assert t.frame_numbers == (8, 9, 10, 11, 12, 13) and t.apex == (0 + 5) // 2
    reasons = dict(res.skipped)
    assert len(res.skipped) == 3
    assert any("unknown emotion 'joy'" in why and where.endswith(":8") for where, why in res.skipped)
    assert any("apex 9 is outside onset..offset 1..4" in why for why in reasons.values())
    assert any("frame folder" in why and "EP09_01" in why for why in reasons.values())
    with pytest.raises(ValueError, match="unknown emotion 'joy'"):
        casme2.load(trees["casme2"], strict=True)


def test_samm_records(trees):
    res = samm.load(trees["samm"])
    assert res.skipped == []
    by_clip = {s.clip_id: s for s in res.samples}
    a = by_clip["006_1_2"]
    assert (a.subject, a.emotion, a.aus, a.fps) == ("006", "happiness", ("AU12", "AU15"), 200.0)
    assert a.frame_numbers[0] == 5562 and a.frame_paths[0].endswith("SAMM/006/006_1_2/006_05562.jpg")
    assert a.source.endswith(":5")  # header found on row 4 by content
    b = by_clip["006_1_3"]
    assert b.subject == "006" and b.apex == 2  # -1 apex -> midpoint of 0..4
    c = by_clip["011_2_1"]
    assert c.emotion == "other" and c.aus == ("AU12", "AU14")
    import cv2
    assert cv2.imread(a.frame_paths[0], cv2.IMREAD_UNCHANGED).ndim == 2  # grayscale as in SAMM


def test_smic_records(trees):
    res = smic.load(trees["smic"])
    assert [s.clip_id for s in res.samples] == ["s1_ne_01", "s1_po_01", "s2_ne_03", "s2_sur_01"]
    s = res.samples[0]
    assert (s.subject, s.label, s.fps, s.onset, s.offset, s.apex) == ("s1", "negative", 100.0, 0, 4, 2)
    assert s.frame_paths[0].endswith(".bmp")
    with pytest.raises(FileNotFoundError, match="VIS"):
        smic.load(trees["smic"], camera="VIS")


def test_composite_mapping_and_counts(trees):
    everything = casme2.load(trees["casme2"]).samples + samm.load(trees["samm"]).samples + smic.load(trees["smic"]).samples
    out, counts = composite.composite(everything)
    assert {s.label for s in out} <= set(composite.CLASSES)
    labels = {(s.database, s.clip_id): s.label for s in out}
    assert labels[("casme2", "EP02_01f")] == "negative" and labels[("casme2", "EP01_11f")] == "negative"
    assert labels[("casme2", "EP03_02")] == "positive" and labels[("casme2", "EP02_04f")] == "surprise"
    assert ("casme2", "EP05_03") not in labels and ("casme2", "EP06_01") not in labels  # fear, others dropped
    assert labels[("samm", "006_1_3")] == "negative" and labels[("samm", "011_3_1")] == "negative"
    assert ("samm", "011_2_1") not in labels  # other dropped
    assert counts["casme2"] == {"samples": 4, "subjects": 2, "negative": 2, "positive": 1, "surprise": 1}
    assert counts["samm"]["samples"] == 4 and counts["smic"]["samples"] == 4


def test_loaders_feed_the_pipeline(trees):
    res = casme2.load(trees["casme2"])
    x = build_inputs(res.samples[:2], RepresentationConfig())
    assert x.shape == (2, 112, 112, 3) and np.isfinite(x).all()
    g = samm.load(trees["samm"]).samples[:1]
    assert build_inputs(g, RepresentationConfig(representation="flow", size=28)).shape == (1, 28, 28, 3)


def test_manifest(trees, tmp_path):
    s = casme2.load(trees["casme2"]).samples[0]
    folder = Path(s.frame_paths[0]).parent
    csv = tmp_path / "m.csv"
    csv.write_text("subject,label,frames,onset,apex,offset,path\n"
                   f"a,negative,{folder},46,48,51,\n"
                   f"b,positive,,,,,{s.frame_paths[0]}\n"
                   "c,positive,,,,,missing.png\n"
                   f"d,,{folder},,,,\n")
    clips, images = manifest.load(csv)
    assert [c.subject for c in clips.samples] == ["a"] and clips.samples[0].apex == 2
    assert [i.subject for i in images] == ["b"]
    assert len(clips.skipped) == 2
    assert any(w.endswith("m.csv:4") and "does not exist" in why for w, why in clips.skipped)
    assert any(w.endswith("m.csv:5") and "empty subject or label" in why for w, why in clips.skipped)
    bad = tmp_path / "bad.csv"
    bad.write_text("who,what\n1,2\n")
    with pytest.raises(ValueError, match="needs columns subject, label"):
        manifest.load(bad)


def test_cell_parsers():
    assert parse_aus("R12 + R15") == ("AU12", "AU15")
    assert parse_aus("AU4+AU7") == ("AU4", "AU7")
    assert parse_aus("12 or 14") == ("AU12", "AU14")
    assert parse_aus("R14A") == ("AU14",)
    assert parse_aus("4(k)+7") == ("AU4", "AU7")
    assert parse_aus("/") == () and parse_aus(float("nan")) == ()
    assert parse_frame_number("/", "x") is None and parse_frame_number(-1, "x") is None
    assert parse_frame_number(46.0, "x") == 46
    with pytest.raises(ValueError, match="sheet.xlsx:3: frame number 'abc'"):
        parse_frame_number("abc", "sheet.xlsx:3")


@pytest.fixture(scope="module")
def composite_root(tmp_path_factory, tiny_synthetic):
    _, samples = tiny_synthetic
    base = tmp_path_factory.mktemp("composite")
    make_casme2(base / "CASME2", samples)
    make_samm(base / "SAMM", samples)
    make_smic(base / "SMIC", samples)
    return base


#: The smallest model (STSTNet, 28 x 28 flow, about 2 s per fold; DIS flow, faster than TV-L1) for
#: tests of data plumbing, where the model does not matter; no final model where the test does not
#: look at it.
QUICK = ["--model", "ststnet", "--flow-method", "dis", "--no-final"]


def _train(args, tmp_path, cache_dir):
    import json

    from typer.testing import CliRunner

    from mer_keras.cli.main import app

    res = CliRunner().invoke(app, ["train", *args, "--epochs", "1", "--no-export", "--out", str(tmp_path),
                                   "--cache-dir", str(cache_dir)])
    assert res.exit_code == 0, res.output
    run = Path(res.output.strip().splitlines()[-1].strip())
    return run, json.loads((run / "results.json").read_text()), res.output


def test_train_on_a_database_tree(trees, tmp_path, cache_dir):
    run, results, output = _train(["--data", "casme2", "--root", str(trees["casme2"]), *QUICK], tmp_path, cache_dir)
    assert results["dataset"] == "casme2" and results["classes"] == list(casme2.CLASSES)
    assert results["n_samples"] == 5  # 6 good rows, fear is outside the 5-class set
    assert results["skipped"] == 3 and (run / "skipped.csv").read_text().count("\n") == 4
    assert "3 skipped" in output


@pytest.mark.slow
def test_train_composite_reports_per_database(composite_root, tmp_path, cache_dir):
    """Six LOSO folds through the CLI (about 40 s). The default run checks the parts: the composite
    mapping and counts (test_composite_mapping_and_counts), no subject on both sides of a composite
    fold (tests/unit/test_protocol_isolation.py) and the per-database report
    (test_protocol_isolation.py::test_report_pools_and_splits_per_database)."""
    run, results, output = _train(["--data", "composite", "--root", str(composite_root)], tmp_path, cache_dir)
    assert results["classes"] == ["negative", "positive", "surprise"]
    assert set(results["per_database"]) == {"casme2", "samm", "smic"}
    assert sum(d["n"] for d in results["per_database"].values()) == results["n_samples"] == 12
    assert results["counts"]["casme2"]["samples"] == 4
    assert len(results["folds"]) == 6  # sub01, sub02 / 006, 011 / s1, s2: subjects never merged across databases
    assert {f["subject"].split("/")[0] for f in results["folds"]} == {"casme2", "samm", "smic"}


@pytest.mark.slow
def test_train_on_a_manifest(trees, tmp_path, cache_dir):
    """Clip rows and precomputed-image rows in one manifest, trained (about 25 s). The default run
    trains on such a manifest in tests/e2e/test_golden.py (manifest case) and reads one here
    (test_manifest)."""
    res = smic.load(trees["smic"])
    csv = tmp_path / "m.csv"
    lines = ["subject,label,frames,path"]
    for s in res.samples:
        lines.append(f"{s.subject},{s.label},{Path(s.frame_paths[0]).parent},")
        lines.append(f"{s.subject}x,{s.label},,{s.frame_paths[s.apex]}")  # precomputed-input rows
    csv.write_text("\n".join(lines) + "\n")
    run, results, _ = _train(["--data", "manifest", "--root", str(csv)], tmp_path / "runs", cache_dir)
    assert results["n_samples"] == 8 and results["classes"] == ["negative", "positive", "surprise"]


def test_missing_root_is_one_clear_error(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from mer_keras.cli.main import app

    monkeypatch.delenv("MER_DATA_ROOT", raising=False)
    res = CliRunner().invoke(app, ["train", "--data", "samm", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "pass --root or set MER_DATA_ROOT" in res.output
    res = CliRunner().invoke(app, ["train", "--data", "smic", "--root", str(tmp_path / "nope"), "--out", str(tmp_path)])
    assert res.exit_code == 2 and "does not exist" in res.output


def test_other_sheet_databases(tmp_path, tiny_synthetic):
    from mer_keras.data import casme, casme3, fourdme, mmew
    from tests.helpers.db_fixtures import make_4dme, make_casme, make_casme3, make_mmew

    _, samples = tiny_synthetic
    c1 = casme.load(make_casme(tmp_path / "CASME", samples))
    assert [(s.subject, s.clip_id, s.emotion, s.fps, s.aus) for s in c1.samples] == [
        ("sub01", "EP01_5", "tense", 60.0, ("AU4", "AU7")), ("sub02", "EP03_1", "disgust", 60.0, ("AU9",))]
    c3 = casme3.load(make_casme3(tmp_path / "CASME3", samples))
    assert [s.clip_id for s in c3.samples] == ["a", "a_7", "b"]  # two expressions of video a stay distinct
    assert [(s.onset, s.apex, s.offset) for s in c3.samples[:2]] == [(0, 2, 4), (6, 8, 10)]
    assert c3.samples[0].subject == "spNO.1" and c3.samples[0].fps == 30.0
    mm = mmew.load(make_mmew(tmp_path / "MMEW", samples))
    assert [(s.subject, s.emotion) for s in mm.samples] == [("S01", "happiness"), ("S02", "surprise")]
    assert "Micro_Expression/happiness/S01_happiness_01" in mm.samples[0].frame_paths[0]
    d4 = fourdme.load(make_4dme(tmp_path / "4DME", samples))
    assert [(s.clip_id, s.emotion, s.aus) for s in d4.samples] == [("S01_1", "negative", ("AU4", "AU7")),
                                                                  ("S02_3", "positive", ("AU12",))]
    assert len(d4.skipped) == 1 and "unknown emotion 'negative+surprise'" in d4.skipped[0][1]
    assert d4.skipped[0][0].endswith("4DME_Labelling_Micro_release v1.xlsx:4")


def test_spot_apex_finds_the_peak_of_motion(tmp_path, tiny_synthetic):
    import cv2

    from mer_keras.preprocess.frames import spot_apex

    _, samples = tiny_synthetic
    base = cv2.imread(samples[0].frame_paths[0])
    paths = []
    for k, shift in enumerate([0, 1, 3, 6, 3, 1]):  # motion peaks at index 3
        m = np.float32([[1, 0, shift], [0, 1, 0]])
        p = tmp_path / f"f{k}.png"
        cv2.imwrite(str(p), cv2.warpAffine(base, m, base.shape[1::-1], borderMode=cv2.BORDER_REFLECT))
        paths.append(str(p))
    assert spot_apex(paths) == 3
    res = smic.load(make_smic(tmp_path / "smic", samples), apex_policy="spot")
    assert all(s.onset <= s.apex <= s.offset for s in res.samples)


def test_cross_database_protocol(trees, tmp_path, cache_dir):
    run, results, output = _train(["--data", "casme2", "--root", str(trees["casme2"]), "--protocol", "cross",
                                   "--test-data", "samm", "--test-root", str(trees["samm"]), *QUICK], tmp_path,
                                  cache_dir)
    assert results["protocol"] == "cross" and results["dataset"] == "casme2-to-samm"
    assert results["classes"] == ["negative", "positive", "surprise"]
    assert [f["subject"] for f in results["folds"]] == ["test"]
    assert results["folds"][0]["n_train"] == 4 and results["folds"][0]["n_test"] == 4  # SAMM "other" dropped
    import pandas as pd
    preds = pd.read_csv(run / "predictions.csv")
    assert set(preds["database"]) == {"samm"}  # only the test database is scored


def test_protocol_checks(trees, tmp_path):
    from typer.testing import CliRunner

    from mer_keras.cli.main import app

    res = CliRunner().invoke(app, ["train", "--data", "casme2", "--root", str(trees["casme2"]),
                                   "--protocol", "cross", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "--test-data" in res.output
    res = CliRunner().invoke(app, ["train", "--data", "casme2", "--root", str(trees["casme2"]),
                                   "--protocol", "composite", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "--data composite" in res.output


FIXTURE_TREES = ["casme2", "samm", "smic", "casme", "casme_sq", "casme3", "mmew", "4dme", "manifest"]


def _prepare_fixture_tree(db, tmp_path, samples, cache_dir) -> Path:
    """Write the fixture tree of ``db``, run ``mer-keras data prepare`` on it; return its root."""
    from typer.testing import CliRunner

    import tests.helpers.db_fixtures as fx
    from mer_keras.cli.main import app

    make = {"casme2": fx.make_casme2, "samm": fx.make_samm, "smic": fx.make_smic, "casme": fx.make_casme,
            "casme3": fx.make_casme3, "mmew": fx.make_mmew, "4dme": fx.make_4dme, "casme_sq": fx.make_casme_sq,
            "manifest": fx.make_smic}[db]
    root = make(tmp_path / db, samples)
    if db == "manifest":  # a manifest over the SMIC fixture's clip folders, paths relative to the CSV
        rows = [f"{s.subject},{s.label},{Path(s.frame_paths[0]).parent.relative_to(root)}"
                for s in smic.load(root).samples]
        (root / "clips.csv").write_text("subject,label,frames\n" + "\n".join(rows) + "\n")
        root = root / "clips.csv"
    res = CliRunner().invoke(app, ["data", "prepare", db, "--root", str(root), "--cache-dir", str(cache_dir)])
    assert res.exit_code == 0, res.output
    assert "clips prepared" in res.output
    return root


@pytest.mark.parametrize("db", FIXTURE_TREES)
def test_prepare_on_every_fixture_tree(db, tmp_path, tiny_synthetic, cache_dir):
    """Every database's loader and the preprocessing of its clips, through ``mer-keras data prepare``
    (training on each tree: the slow test below; in the default run, training on a tree:
    test_train_on_a_database_tree, test_cross_database_protocol)."""
    from mer_keras.data.datasets import load_dataset

    root = _prepare_fixture_tree(db, tmp_path, tiny_synthetic[1], cache_dir)
    data = load_dataset(db, root)
    assert data.name == db and len({s.subject for s in data.samples}) >= 2  # at least two LOSO folds


@pytest.mark.slow
@pytest.mark.parametrize("db", FIXTURE_TREES)
def test_prepare_and_train_on_every_fixture_tree(db, tmp_path, tiny_synthetic, cache_dir):
    root = _prepare_fixture_tree(db, tmp_path, tiny_synthetic[1], cache_dir)
    run, results, _ = _train(["--data", db, "--root", str(root)], tmp_path / "runs", cache_dir)
    assert results["dataset"] == db and results["n_samples"] >= 2


def test_manifest_video_rows(tmp_path, tiny_synthetic):
    import cv2

    _, samples = tiny_synthetic
    s = samples[0]
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 100, (192, 192))
    for p in s.frame_paths[:8]:
        writer.write(cv2.imread(p))
    writer.release()
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 truncated")
    csv = tmp_path / "m.csv"
    csv.write_text("subject,label,frames,onset,apex,offset\na,negative,clip.avi,2,4,7\nb,positive,broken.mp4,,,\n")
    clips, _ = manifest.load(csv, cache_dir=tmp_path / "cache")
    assert len(clips.samples) == 1
    v = clips.samples[0]
    assert len(v.frame_paths) == 8 and (v.onset, v.apex, v.offset) == (1, 3, 6) and v.clip_id == "clip"
    assert clips.skipped[0][0].endswith("m.csv:3") and "broken.mp4" in clips.skipped[0][1]
    again, _ = manifest.load(csv, cache_dir=tmp_path / "cache")
    assert again.samples[0].frame_paths == v.frame_paths  # decoded once, reused


def test_casme_sq_records(tmp_path, tiny_synthetic):
    from mer_keras.data import casme_sq
    from tests.helpers.db_fixtures import make_casme_sq

    _, samples = tiny_synthetic
    res = casme_sq.load(make_casme_sq(tmp_path / "CASME_sq", samples))
    assert [(s.subject, s.clip_id, s.emotion, s.fps) for s in res.samples] == [
        ("s15", "anger1_1", "negative", 30.0), ("s15", "happy1_1", "positive", 30.0),
        ("s16", "anger1_1", "negative", 30.0)]
    a = res.samples[0]
    assert (a.frame_numbers[a.onset], a.frame_numbers[a.apex], a.frame_numbers[a.offset]) == (3, 5, 8)
    assert "rawpic/s15/15_0101disgustingteeth/img1.jpg" in a.frame_paths[0] and a.aus == ("AU4", "AU7")
    assert len(res.skipped) == 1 and "not coded (0)" in res.skipped[0][1] and res.skipped[0][0].endswith(":5")


def test_the_sheets_aus_reach_the_au_heads_targets(trees, cache_dir):
    """The coding sheet's AUs become the AU head's targets ("" -> masked), and the sequence input of
    au_convlstm builds from a real-layout tree (training on it: the slow test below)."""
    from mer_keras.data.pipeline import RepresentationConfig, build_inputs
    from mer_keras.train.targets import au_targets

    samples = casme2.load(trees["casme2"]).samples
    _, known = au_targets([s.aus for s in samples])
    assert known.tolist() == [1.0 if s.aus else 0.0 for s in samples] and known.sum() >= 4  # "" -> masked
    x = build_inputs(samples[:1], RepresentationConfig(representation="sequence", size=64), cache_dir=cache_dir)
    assert x.shape == (1, 8, 64, 64, 3)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["au_convlstm", "micro_attention", "htnet"])
def test_zoo_models_train_on_a_database_tree(model, trees, tmp_path, cache_dir):
    """Sequence (with the sheet's AUs), grayscale apex and region-flow inputs from a real-layout tree,
    one fold each (5 to 15 s a model). In the default run: the same inputs from a tree
    (tests/e2e/test_prepare.py::test_prepare_builds_the_inputs_of_named_models), the sheet's AUs as
    targets (above) and the AU heads trained (tests/unit/test_targets.py)."""
    from mer_keras.data.pipeline import RepresentationConfig, build_inputs
    from mer_keras.train.targets import au_targets

    args = ["--data", "casme2", "--root", str(trees["casme2"]), "--model", model, "--folds", "sub01"]
    if model == "htnet":
        args += ["--variant", "small"]
    run, results, _ = _train(args, tmp_path, cache_dir)
    assert results["model"] == model and results["n_samples"] >= 1
    if model == "au_convlstm":  # the coding sheet's AUs reach the AU head's targets
        samples = casme2.load(trees["casme2"]).samples
        _, known = au_targets([s.aus for s in samples])
        assert known.tolist() == [1.0 if s.aus else 0.0 for s in samples] and known.sum() >= 4  # "" -> masked
        x = build_inputs(samples[:1], RepresentationConfig(representation="sequence", size=64), cache_dir=cache_dir)
        assert x.shape == (1, 8, 64, 64, 3)
