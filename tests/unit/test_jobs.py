"""The job steps one by one, without a training run: options schema, resolution, the command
built from it, the run folder, data loading checks."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields

import numpy as np
import pytest
from typer.testing import CliRunner

from mer_keras.errors import MissingFileError, ModelFileError, OptionError, RunFolderError, UnknownNameError
from mer_keras.jobs.resolve import resolve_options, resume_options, train_config
from mer_keras.jobs.schema import flag_name, from_config, option, validate
from mer_keras.jobs.train_options import TrainOptions, options_from_config, parse_aux_weights, parse_folds
from mer_keras.runs import RunFolder, new_run
from mer_keras.train.config import TrainConfig


@pytest.mark.parametrize("change, flag", [
    ({"batch_size": 0}, "--batch-size 0"), ({"epochs": 0}, "--epochs 0"), ({"lr": 0.0}, "--lr 0.0"),
    ({"lr": float("inf")}, "--lr inf"), ({"lr": float("nan")}, "--lr nan"), ({"workers": 0}, "--workers 0"),
    ({"subjects": 1}, "--subjects 1"), ({"backup_minutes": -1.0}, "--backup-minutes -1.0"),
    ({"epochs": "ten"}, "--epochs 'ten'"), ({"epochs": True}, "--epochs True"),
    ({"model": "nope"}, "--model 'nope'"), ({"protocol": "kfold"}, "--protocol 'kfold'"),
])
def test_bad_option_values_are_refused_by_name(change, flag):
    opts = TrainOptions(**change)
    with pytest.raises(OptionError) as err:
        validate(opts)
    assert str(err.value).startswith(flag)


def test_good_defaults_validate_and_training_defaults_are_written_once():
    validate(TrainOptions())
    lib = TrainConfig()
    for name in ("model", "seed", "deterministic", "mixed_precision", "backup_minutes"):
        assert getattr(TrainOptions(), name) == getattr(lib, name), name
    resolved, _ = resolve_options(TrainOptions())  # the options a recipe may set are filled from the library's
    for name in ("epochs", "batch_size", "augment", "shift", "class_weight"):
        assert getattr(TrainOptions(), name) is None and getattr(resolved, name) == getattr(lib, name), name


def test_resolve_fills_the_model_defaults_without_building_a_model(monkeypatch):
    import mer_keras.registry as registry

    monkeypatch.setattr(registry.ModelSpec, "builder", property(lambda self: pytest.fail("a model was built")),
                        raising=False)
    opts, rep = resolve_options(TrainOptions(model="htnet"))
    assert opts.lr == 5e-5 and rep.representation == "flow" and rep.size == 28 and rep.regions == "htnet"
    opts, rep = resolve_options(TrainOptions(model="learnet", representation="apex", lr=1e-2))
    assert opts.lr == 1e-2 and rep.representation == "apex" and rep.size == 112
    opts, rep = resolve_options(TrainOptions(model="micro_attention", input_size=28))
    assert rep.input_shape == (28, 28, 1) and rep.crop == 128  # the face is still aligned at 128 px


def test_an_input_size_the_model_cannot_take_is_refused_with_the_reason():
    from mer_keras.jobs.transfer_checks import probe_model

    data = type("D", (), {"classes": ("a", "b", "c")})()
    opts, rep = resolve_options(TrainOptions(model="learnet", input_size=16))
    with pytest.raises(OptionError, match=r"--input-size 16: learnet cannot take inputs of shape \(16, 16, 3\) "
                                          r"\(LEARNet needs inputs of at least 64 x 64.*registered input is \(112, 112, 3\)"):
        probe_model(opts, rep, data)
    opts, rep = resolve_options(TrainOptions(model="micro_attention", input_size=28))
    assert probe_model(opts, rep, data).input_shape == (None, 28, 28, 1)


@pytest.mark.parametrize("opts, error, text", [
    (TrainOptions(variant="v3"), OptionError, "--variant 'v3': learnet has variants paper, released"),
    (TrainOptions(model="vgg16", variant="paper"), OptionError, "vgg16 has no variants"),
    (TrainOptions(freeze_until="conv1"), OptionError, "--freeze-until needs --init-from"),
    (TrainOptions(data="casme2", synthetic_expression="macro"), OptionError, "applies to the synthetic set"),
    (TrainOptions(init_from="/no/such/model.keras"), ModelFileError, "no model at /no/such/model.keras"),
    (TrainOptions(model="au_convlstm", representation="flow"), OptionError, "does not fit it"),
    (TrainOptions(model="feature_refinement", aux_weights={"nope": 1.0}), OptionError, "nope"),
])
def test_resolve_refuses_options_that_do_not_fit(opts, error, text):
    with pytest.raises(error, match=None) as err:
        resolve_options(opts)
    assert text in str(err.value)


def test_unknown_model_names_the_known_ones():
    from mer_keras.factory import get_spec

    with pytest.raises(UnknownNameError, match="registered models: .*learnet"):
        get_spec("nope")


def test_train_config_is_a_view_of_the_options():
    opts, rep = resolve_options(TrainOptions(model="ststnet", epochs=3, batch_size=4, variant=None, augment=False))
    cfg = train_config(opts, rep)
    assert (cfg.model, cfg.epochs, cfg.batch_size, cfg.lr, cfg.augment, cfg.flow_input) == ("ststnet", 3, 4, 1e-3,
                                                                                              False, True)


def test_option_parsers():
    assert parse_folds("sub01, sub02") == ["sub01", "sub02"] and parse_folds(None) is None
    assert parse_aux_weights(["proposal=0.5", "au = 1"]) == {"proposal": 0.5, "au": 1.0}
    assert parse_aux_weights([]) is None
    for bad in ("proposal", "=1", "proposal=x"):
        with pytest.raises(OptionError, match="OUTPUT=WEIGHT"):
            parse_aux_weights([bad])


def test_the_api_takes_the_command_lines_forms():
    """TrainOptions(folds="a,b") is what --folds a,b gives; aux weights and a tune space too."""
    from mer_keras.jobs.schema import validate
    from mer_keras.jobs.tune import TuneOptions

    opts = TrainOptions(folds="casme2_sub01, samm_006", aux_weights=["proposal=0.5"])
    validate(opts)
    assert opts.folds == ["casme2_sub01", "samm_006"] and opts.aux_weights == {"proposal": 0.5}
    tune = TuneOptions(space=["lr=0.001,0.002", "epochs=40"])
    validate(tune)
    assert tune.space == {"lr": [0.001, 0.002], "epochs": [40]}
    with pytest.raises(OptionError, match="OUTPUT=WEIGHT"):
        validate(TrainOptions(aux_weights=["proposal"]))


def test_options_from_config_ignore_other_keys_and_read_old_synthetic_runs():
    opts = options_from_config({"model": "ststnet", "data": None, "epochs": 5, "classes": ["a"], "loso_subjects": []})
    assert (opts.model, opts.data, opts.epochs) == ("ststnet", "synthetic", 5)
    assert from_config(TrainOptions, {"seed": 3}, out="x").out == "x"


@dataclass
class _Demo:
    """A schema exercising every kind of field the command builder supports."""

    target: str = option(help="A positional argument.", argument=True)
    count: int = option(2, "A bounded number.", min=1)
    mode: str = option("b", "A choice.", choices=lambda: ("a", "b"))
    flag: bool = option(False, "A switch.")
    export: bool = option(True, "A negatable flag.", secondary="--no-export")
    final: bool | None = option(None, "A tri-state flag.", secondary="--no-final")
    items: list[str] | None = option(None, "Comma-separated.", cli_type=str, parse=parse_folds)
    weights: dict | None = option(None, "Repeatable.", flag="--weight", cli_type=list[str], parse=parse_aux_weights)
    hidden: int = option(7, "Not on the command line.", cli=False)


def test_the_command_is_built_from_the_schema():
    import typer

    from mer_keras.cli.common import command

    seen = []
    app = typer.Typer()
    app.command("demo")(command(_Demo, lambda opts: seen.append(opts) or validate(opts), doc="Demo."))
    app.command("other")(lambda: None)  # two commands: typer keeps the command's name
    runner = CliRunner()
    res = runner.invoke(app, ["demo", "T", "--count", "3", "--mode", "a", "--flag", "--no-export", "--no-final",
                              "--items", "x,y", "--weight", "p=0.5", "--weight", "q=2"])
    assert res.exit_code == 0, res.output
    assert seen[-1] == _Demo("T", 3, "a", True, False, False, ["x", "y"], {"p": 0.5, "q": 2.0}, 7)
    res = runner.invoke(app, ["demo", "T"])
    assert res.exit_code == 0 and seen[-1] == _Demo("T")
    help_text = runner.invoke(app, ["demo", "--help"], terminal_width=200).output
    for f in fields(_Demo):
        if f.metadata["cli"] and not f.metadata["argument"]:
            assert flag_name(f) in help_text
    assert "--hidden" not in help_text and "--no-export" in help_text
    res = runner.invoke(app, ["demo", "T", "--count", "0"])  # the schema's bound, one red line, exit 2
    assert res.exit_code == 2 and "--count 0: expected at least 1" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["demo", "T", "--mode", "z"])  # typer's own choice check
    assert res.exit_code == 2


def test_train_help_shows_every_option_with_its_default():
    from mer_keras.cli.main import app

    res = CliRunner().invoke(app, ["train", "--help"], terminal_width=250, env={"COLUMNS": "250"})
    assert res.exit_code == 0
    for f in fields(TrainOptions):
        assert flag_name(f) in res.output, f.name
    assert "default: 80, or the" in res.output and "default: 32, or the" in res.output  # epochs, batch size


def test_run_folder_round_trips_folds_and_refuses_bad_ones(tmp_path):
    run, k = new_run(tmp_path, "ststnet", "synthetic", when=0.0)
    again, k2 = new_run(tmp_path, "ststnet", "synthetic", when=0.0)
    assert (k, k2) == (1, 2) and again.path.name == run.path.name + "-2"
    run.write_fold("synthetic/sub01", ["a", "b"], ["synthetic/sub01/c1", "synthetic/sub01/c2"], ["a", "b"],
                   np.array([[0.9, 0.1], [0.2, 0.8]], np.float32), {"subject": "synthetic/sub01"})
    assert run.fold_file("synthetic/sub01").name == "synthetic__sub01.json"
    folds = run.read_folds()
    assert list(folds) == ["synthetic/sub01"] and folds["synthetic/sub01"]["labels"] == ["a", "b"]
    done = run.completed_folds({"synthetic/sub01": ["synthetic/sub01/c1", "synthetic/sub01/c2"]}, ["a", "b"])
    assert done["synthetic/sub01"]["probabilities"].dtype == np.float32
    with pytest.raises(RunFolderError, match="its test clips differ"):
        run.completed_folds({"synthetic/sub01": ["synthetic/sub01/c1", "synthetic/sub01/other"]}, ["a", "b"])
    with pytest.raises(RunFolderError, match="its classes"):
        run.completed_folds({"synthetic/sub01": ["synthetic/sub01/c1", "synthetic/sub01/c2"]}, ["a", "c"])
    path = run.fold_file("synthetic/sub01")
    path.rename(run.fold_file("synthetic/sub02"))
    with pytest.raises(RunFolderError, match="not the fold its name says"):
        run.read_folds()
    run.fold_file("synthetic/sub02").write_text("{")
    with pytest.raises(RunFolderError, match="synthetic__sub02.json: not a fold file"):
        run.read_folds()


def test_resume_refuses_a_complete_run_and_a_folder_without_config(tmp_path):
    run, _ = new_run(tmp_path, "ststnet", "synthetic")
    with pytest.raises(MissingFileError, match="no config.json"):
        resume_options(run.path)
    run.write_config({"model": "ststnet", "epochs": 2})
    assert resume_options(run.path).resume == str(run.path)
    (run.path / "metadata.json").write_text(json.dumps({}))
    with pytest.raises(RunFolderError, match="nothing to resume"):
        resume_options(run.path)
    run.path.joinpath("config.json").write_text("{")
    with pytest.raises(RunFolderError, match="not readable JSON"):
        RunFolder(run.path).read_config()


@pytest.mark.parametrize("request_, text", [
    ({"protocol": "composite", "data": "casme2"}, "--protocol composite runs on --data composite"),
    ({"protocol": "cross", "data": "casme2"}, "--protocol cross needs --data TRAIN_DB and --test-data TEST_DB"),
    ({"data": "manifest"}, "--data manifest needs --root"),
])
def test_load_data_checks_the_protocol_before_reading(request_, text):
    from rich.console import Console

    from mer_keras.jobs.inputs import DataRequest, load_data

    with pytest.raises(OptionError, match=text.replace("-", r"\-")):
        load_data(DataRequest.of(TrainOptions(**request_)), Console(quiet=True))


def test_load_data_reads_the_synthetic_default_as_a_dataset(cache_dir):
    from rich.console import Console

    from mer_keras.jobs.inputs import DataRequest, load_data

    ds = load_data(DataRequest.of(TrainOptions(subjects=3, clips=4, seed=7, cache_dir=str(cache_dir))),
                   Console(quiet=True))
    assert ds.name == "synthetic" and ds.classes == ["negative", "positive", "surprise"]
    assert len(ds.samples) == 12 and len(ds.subjects) == 3 and ds.root
    assert ds.keys[0].startswith("synthetic/sub01/") and len(ds.rows) == 12


def test_a_run_recorded_with_a_relative_root_is_read_from_any_folder(tmp_path):
    """Runs record absolute paths (and their working folder); a run recorded before, with a
    relative --root, is read against the folder it was made in, found from its --out and where its
    folder is (issue 31: export and explain from another folder failed)."""
    from mer_keras.jobs.train_options import absolute_paths, options_from_config, recorded_working_folder

    run = tmp_path / "work" / "runs" / "20261207-learnet-manifest"
    config = {"data": "manifest", "root": "data/manifest.csv", "out": "runs", "cache_dir": "cache"}
    assert recorded_working_folder(config, run) == str(tmp_path / "work")
    opts = options_from_config(config, run / "config.json")
    assert opts.root == str(tmp_path / "work" / "data" / "manifest.csv")
    assert opts.cache_dir == str(tmp_path / "work" / "cache")
    assert options_from_config({**config, "cwd": "/elsewhere"}, run / "config.json").root == "/elsewhere/data/manifest.csv"
    assert recorded_working_folder({**config, "out": "other"}, run) is None  # the folder does not end in --out
    assert options_from_config({**config, "out": "other"}, run / "config.json").root == "data/manifest.csv"
    assert absolute_paths({"root": "/abs/x", "faces": None}, "/base") == {"root": "/abs/x", "faces": None}


def test_balanced_sampling_cutmix_and_database_normalisation_through_the_train_command(tmp_path, cache_dir):
    """The options reach training and the run records them: balanced sampling turns the class
    weights off, per-database normalisation evaluates the protocol only (no final model)."""
    import json
    from pathlib import Path

    from typer.testing import CliRunner

    from mer_keras.cli.main import app

    res = CliRunner().invoke(app, ["train", "--model", "ststnet", "--subjects", "3", "--clips", "4", "--seed", "7",
                                   "--epochs", "1", "--flow-method", "dis", "--no-export", "--out", str(tmp_path),
                                   "--cache-dir", str(cache_dir), "--sampling", "balanced", "--cutmix",
                                   "--input-norm", "database"])
    assert res.exit_code == 0, res.output
    run = Path(res.output.strip().splitlines()[-1].strip())
    config = json.loads((run / "config.json").read_text())
    assert (config["sampling"], config["cutmix"], config["input_norm"]) == ("balanced", True, "database")
    assert config["class_weight"] is False and config["final"] is False
    assert (run / "results.json").exists() and not (run / "model.keras").exists()
    res = CliRunner().invoke(app, ["train", "--input-norm", "database", "--final", "--out", str(tmp_path / "no")])
    assert res.exit_code == 2 and "--input-norm database evaluates the protocol only" in res.output
    res = CliRunner().invoke(app, ["train", "--sampling", "balanced", "--class-weight", "--out", str(tmp_path / "no")])
    assert res.exit_code == 2 and "add --no-class-weight" in res.output and not (tmp_path / "no").exists()


def test_config_runs_again_with_a_recorded_runs_options(tmp_path, cache_dir):
    """`train --config RUN`: the recorded options (model, data, flow method, ...) with the ones
    given beside it replacing theirs, in a new run folder; not with --resume, not for tune."""
    import json
    from dataclasses import asdict
    from pathlib import Path

    from typer.testing import CliRunner

    from mer_keras.cli.main import app

    tiny_flow_run = tmp_path / "recorded"  # a run's config.json as train writes it (the options)
    tiny_flow_run.mkdir()
    recorded = TrainOptions(model="ststnet", subjects=3, clips=4, seed=7, epochs=2, flow_method="dis",
                            export=False, cache_dir=str(cache_dir))
    (tiny_flow_run / "config.json").write_text(json.dumps(asdict(recorded)))

    res = CliRunner().invoke(app, ["train", "--config", str(tiny_flow_run), "--seed", "8", "--epochs", "1",
                                   "--folds", "none", "--no-export", "--out", str(tmp_path / "runs")])
    assert res.exit_code == 0, res.output
    run = Path(res.output.strip().splitlines()[-1].strip())
    assert run.parent == tmp_path / "runs"
    old, new = (json.loads((r / "config.json").read_text()) for r in (tiny_flow_run, run))
    assert (new["model"], new["subjects"], new["clips"], new["flow_method"]) == (old["model"], 3, 4, "dis")
    assert (new["seed"], new["epochs"], new["folds"]) == (8, 1, ["none"]) and old["seed"] == 7
    res = CliRunner().invoke(app, ["train", "--config", str(tiny_flow_run), "--resume", str(tiny_flow_run)])
    assert res.exit_code == 2 and "give one of them" in res.output
    res = CliRunner().invoke(app, ["tune", "--config", str(tiny_flow_run)])
    assert res.exit_code == 2 and "--config re-runs a train run" in res.output
