"""``--data megc2019-flow``: the published MEGC2019 composite flow layout (STSTNet / HTNet code).

A generated fixture in the same layout checks the reading (the space before ``.png``, subjects
``<dataset>_<sub>``, the RGB channel order u, v, strain) and every bad row (a missing file, a label
outside 0..2, an unknown dataset, a duplicated row: each named by file and row). The real set in
``../shared/data/megc2019_composite_flow/`` is read where it is present (skipped elsewhere)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from mer_keras.cli.main import app
from mer_keras.data import megc2019_flow
from mer_keras.data.datasets import load_dataset
from mer_keras.data.pipeline import image_inputs
from mer_keras.errors import DataError, MissingFileError, OptionError

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "megc2019_composite_flow"
HEADER = "dataset,sub,filename_o,label,apex,imagename,sub_filename\n"
ROWS = [("casme2", "sub01", "EP02_01f", "1"), ("casme2", "sub02", "EP01_11f", "0"), ("samm", "006", "006_1_2", "2"),
        ("samm", "007", "007_7_1", "0"), ("smic", "s1", "s1_ne_01", "0"), ("smic", "s2", "s2_sur_01", "2")]


def write_layout(root: Path, rows=ROWS, extra: str = "") -> Path:
    """CSV + 28 x 28 PNGs; pixel (R, G, B) = (u, v, strain) = (10 + k, 100 + k, 200 + k) for row k."""
    (root / megc2019_flow.IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    lines = [HEADER]
    for k, (db, sub, clip, label) in enumerate(rows):
        lines.append(f"{db},{sub},{clip},{label},,{sub}_{clip}.jpg,\n")
        rgb = np.zeros((28, 28, 3), np.uint8) + np.array([10 + k, 100 + k, 200 + k], np.uint8)
        cv2.imwrite(str(megc2019_flow.image_path(root, sub, clip)), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    (root / megc2019_flow.SHEET).write_text("".join(lines) + extra)
    return root


def test_reads_the_published_layout_with_its_subjects_classes_and_channel_order(tmp_path):
    ds = load_dataset("megc2019-flow", write_layout(tmp_path))
    assert ds.classes == ["negative", "positive", "surprise"] and not ds.skipped
    assert [i.subject for i in ds.images] == ["casme2_sub01", "casme2_sub02", "samm_006", "samm_007", "smic_s1",
                                              "smic_s2"]
    assert [i.label for i in ds.images] == ["positive", "negative", "surprise", "negative", "negative", "surprise"]
    assert [r["database"] for r in ds.rows] == ["casme2", "casme2", "samm", "samm", "smic", "smic"]
    assert ds.counts["samm"] == {"samples": 2, "subjects": 2, "negative": 1, "positive": 0, "surprise": 1}
    assert all(Path(i.path).name.endswith(" .png") for i in ds.images)
    x = image_inputs([i.path for i in ds.images], 28)
    np.testing.assert_array_equal(x[:, 0, 0], [[10 + k, 100 + k, 200 + k] for k in range(6)])  # u, v, strain


def test_htnet_regions_are_cut_from_the_whole_face_image_at_fixed_centres(tmp_path):
    """Ready flow images hold no apex frame for landmarks: HTNet's four 14 x 14 regions come from
    fixed centres (the official code's fallback points), rows indexed by y, tiled 2 x 2."""
    from mer_keras.preprocess.representation import FIXED_REGION_CENTRES_28

    yy, xx = np.mgrid[0:28, 0:28]
    img = np.stack([xx, yy, np.zeros_like(xx)], -1).astype(np.uint8)  # u = column, v = row
    path = tmp_path / "whole .png"
    cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    x = image_inputs([str(path)], 28, regions="htnet")[0]
    for (cx, cy), (ty, tx) in zip(FIXED_REGION_CENTRES_28, [(0, 0), (0, 14), (14, 0), (14, 14)]):
        tile = x[ty:ty + 14, tx:tx + 14]
        x0, y0 = min(max(cx - 7, 0), 14), min(max(cy - 7, 0), 14)
        np.testing.assert_array_equal(tile[0, :, 0], np.arange(x0, x0 + 14))  # columns of the region
        np.testing.assert_array_equal(tile[:, 0, 1], np.arange(y0, y0 + 14))  # rows of the region
    np.testing.assert_array_equal(image_inputs([str(path)], 28)[0], img)  # other models: the whole face


@pytest.mark.parametrize("row, reason", [
    (("casme2", "sub03", "EP09_01", "1"), "does not exist"),       # no image for this row
    (("casme2", "sub01", "EP03_02", "3"), "label '3' is not 0, 1 or 2"),
    (("casme", "sub01", "EP04_02", "1"), "unknown dataset 'casme'"),
])
def test_a_bad_row_is_named_by_file_and_row(tmp_path, row, reason):
    root = write_layout(tmp_path, extra=",".join(row[:3]) + f",{row[3]},,,\n")
    ds = load_dataset("megc2019-flow", root)  # lenient: the row is skipped with its reason
    where = f"{root / megc2019_flow.SHEET}:8"
    assert len(ds.images) == 6 and ds.skipped == [(where, ds.skipped[0][1])] and reason in ds.skipped[0][1]
    with pytest.raises(DataError, match=f"{megc2019_flow.SHEET}:8: .*{reason}"):
        load_dataset("megc2019-flow", root, strict=True)


def test_a_file_without_the_published_space_is_explained(tmp_path):
    root = write_layout(tmp_path)
    src = megc2019_flow.image_path(root, "sub01", "EP02_01f")
    src.rename(src.with_name("sub01_EP02_01f.png"))
    with pytest.raises(DataError, match=r":2: .*without the space before \.png"):
        load_dataset("megc2019-flow", root, strict=True)


def test_a_duplicated_row_and_a_missing_sheet_stop_the_load(tmp_path):
    root = write_layout(tmp_path, extra="samm,006,006_1_2,2,,,\n")
    with pytest.raises(DataError, match=r":8: duplicates row 4"):
        load_dataset("megc2019-flow", root)
    with pytest.raises(MissingFileError, match=megc2019_flow.SHEET):
        load_dataset("megc2019-flow", tmp_path / "elsewhere")


def test_a_model_without_flow_input_is_refused(tmp_path):
    res = CliRunner().invoke(app, ["train", "--data", "megc2019-flow", "--root", str(write_layout(tmp_path)),
                                   "--model", "learnet", "--out", str(tmp_path / "runs")])
    assert res.exit_code == 2 and "holds optical-flow images" in res.output


@pytest.mark.skipif(not REAL.is_dir(), reason=f"the real composite flow set is not at {REAL}")
def test_the_real_set_has_its_published_counts_and_channel_order():
    """442 clips of 68 subjects; strain is the dark channel; u anti-correlates with its mirror
    (a left-right flip negates horizontal motion), v does not."""
    ds = load_dataset("megc2019-flow", REAL, strict=True)
    assert len(ds.images) == 442 and len({i.subject for i in ds.images}) == 68
    assert {db: c["samples"] for db, c in ds.counts.items()} == {"casme2": 145, "samm": 133, "smic": 164}
    x = image_inputs([i.path for i in ds.images], 28)
    means = x.mean(axis=(0, 1, 2))
    assert means[2] < 60 < min(means[0], means[1])

    def mirror_correlation(c):
        a = x[..., c] - x[..., c].mean(axis=(1, 2), keepdims=True)
        b = a[:, :, ::-1]
        return float(np.mean((a * b).sum(axis=(1, 2)) / np.sqrt((a * a).sum(axis=(1, 2)) * (b * b).sum(axis=(1, 2)))))

    assert mirror_correlation(0) < 0 < mirror_correlation(1)


@pytest.mark.slow
@pytest.mark.skipif(not REAL.is_dir(), reason=f"the real composite flow set is not at {REAL}")
def test_a_short_ststnet_loso_on_the_real_set_is_well_above_chance(tmp_path):
    """STSTNet, 30 epochs, all 68 LOSO folds, no final model (about 9 min on 2 cores): pooled UF1
    well above chance (1/3); measured 0.718 (CASME II 0.895, SAMM 0.546, SMIC 0.683) on 2026-11-29."""
    import json

    res = CliRunner().invoke(app, ["train", "--data", "megc2019-flow", "--root", str(REAL), "--model", "ststnet",
                                   "--epochs", "30", "--no-final", "--no-export", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    results = json.loads((Path(res.output.strip().splitlines()[-1].strip()) / "results.json").read_text())
    assert results["overall"]["uf1"] > 0.6
    assert set(results["per_database"]) == {"casme2", "samm", "smic"}


def test_a_run_on_the_published_images_records_their_minmax_encoding():
    """The published images are min-max encoded per image: the run records it (metadata.json, and so
    edge.run) and refuses a contrary --flow-encoding."""
    from mer_keras.jobs.resolve import resolve_options
    from mer_keras.jobs.train_options import TrainOptions

    _, rep = resolve_options(TrainOptions(data="megc2019-flow", model="ststnet"))
    assert rep.flow_encoding == "minmax"
    assert resolve_options(TrainOptions(model="ststnet"))[1].flow_encoding == "fixed"
    assert resolve_options(TrainOptions(model="ststnet", flow_encoding="minmax"))[1].flow_encoding == "minmax"
    with pytest.raises(OptionError, match="min-max encoded"):
        resolve_options(TrainOptions(data="megc2019-flow", model="ststnet", flow_encoding="fixed"))
    with pytest.raises(OptionError, match="applies to flow inputs"):
        resolve_options(TrainOptions(model="learnet", flow_encoding="minmax"))


def test_evaluate_scores_a_dataset_with_the_models_encoding_and_names_foreign_labels(tmp_path):
    """``evaluate --data``: the clips go through the model's recorded preprocessing; labels outside the
    model's classes stop it with their names (nothing dropped); an unwritable --out fails first."""
    import json

    root = write_layout(tmp_path / "data")
    res = CliRunner().invoke(app, ["train", "--data", "megc2019-flow", "--root", str(root), "--model", "ststnet",
                                   "--epochs", "1", "--folds", "none", "--no-export", "--out", str(tmp_path / "runs")])
    assert res.exit_code == 0, res.output
    run = Path(res.output.strip().splitlines()[-1].strip())
    recorded = json.loads((run / "metadata.json").read_text())
    assert recorded["preprocessing"]["flow_encoding"] == "minmax"
    assert recorded["window"] == megc2019_flow.WINDOW  # the images hold no durations: the documented window
    res = CliRunner().invoke(app, ["evaluate", str(run), "--data", "megc2019-flow", "--root", str(root),
                                   "--out", str(tmp_path / "eval")])
    assert res.exit_code == 0, res.output
    assert "fit to its own training clips" in res.output
    out = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert out["dataset"] == "megc2019-flow" and out["n_samples"] == 6 and "model.keras" in out["models"]
    meta = json.loads((run / "metadata.json").read_text())
    (run / "metadata.json").write_text(json.dumps({**meta, "classes": ["negative", "positive", "other"]}))
    res = CliRunner().invoke(app, ["evaluate", str(run), "--data", "megc2019-flow", "--root", str(root),
                                   "--out", str(tmp_path / "eval2")])
    assert res.exit_code == 2 and "labels surprise (2) are not classes of the model" in res.output
    (tmp_path / "file").write_text("")
    res = CliRunner().invoke(app, ["evaluate", str(run), "--data", "megc2019-flow", "--root", str(root),
                                   "--out", str(tmp_path / "file" / "eval")])
    assert res.exit_code == 2 and "not a folder" in res.output


@pytest.fixture(scope="module")
def fixture_final_run(tmp_path_factory):
    """A final STSTNet fitted (1 epoch, no fold) on the generated layout: (data root, run, output)."""
    base = tmp_path_factory.mktemp("flow_final")
    root = write_layout(base / "data")
    res = CliRunner().invoke(app, ["train", "--data", "megc2019-flow", "--root", str(root), "--model", "ststnet",
                                   "--epochs", "1", "--folds", "none", "--no-export", "--out", str(base / "runs")])
    assert res.exit_code == 0, res.output
    return root, Path(res.output.strip().splitlines()[-1].strip()), res.output


def test_evaluate_writes_under_runs_and_asks_for_data_for_a_real_data_model(fixture_final_run, tmp_path, monkeypatch):
    """Without --out the evaluation goes to runs/eval-<time>-<model folder> of the working folder,
    never into the model's folder; a model trained on a database is not scored on synthetic clips
    unless asked (--data synthetic)."""
    import os

    root, run, _ = fixture_final_run
    before = sorted(os.listdir(run))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    res = CliRunner().invoke(app, ["evaluate", str(run)])
    assert res.exit_code == 2 and "trained on megc2019-flow" in res.output and "give --data" in res.output
    res = CliRunner().invoke(app, ["evaluate", str(run), "--data", "megc2019-flow", "--root", str(root)])
    assert res.exit_code == 0, res.output
    made = list((work / "runs").iterdir())
    assert len(made) == 1 and made[0].name.startswith("eval-") and made[0].name.endswith(run.name)
    assert (made[0] / "results.json").exists() and sorted(os.listdir(run)) == before


def test_explain_finds_a_ready_image_by_its_predictions_csv_name(fixture_final_run, tmp_path):
    """`explain` on a run of ready flow images: the sample named as predictions.csv names it
    (subject/clip, with the published space before .png, or the clip alone); an unknown name lists
    real names of the run. (Its training output: no preprocessing bar for ready images, a bar of
    its own for the final fit.)"""
    _, run, output = fixture_final_run
    assert "0/0" not in output  # ready images: no preprocessing bar with nothing to compute
    assert "final model" in output and "1/1" in output  # the final fit alone has its own bar
    for name in ["samm_006/006_006_1_2 .png", "samm/samm_006/006_006_1_2 .png", "006_006_1_2"]:
        res = CliRunner().invoke(app, ["explain", str(run), "--sample", name, "--out", str(tmp_path / "cam.png")])
        assert res.exit_code == 0, res.output
        assert "samm_006/006_006_1_2 .png: predicted" in res.output and (tmp_path / "cam.png").stat().st_size > 5000
    res = CliRunner().invoke(app, ["explain", str(run), "--sample", "sub01/clip003"])
    assert res.exit_code == 2 and "no sample 'sub01/clip003'" in res.output and "'casme2_sub01/" in res.output
