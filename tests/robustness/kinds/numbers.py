"""Numbers that are not numbers: 0, negative, NaN, infinite, huge, a float where a whole number is
expected, a bool or text where a number is, in every numeric option of every command, in the
Python API's option dataclasses and library configs, and in a run's recorded ``config.json``.

Every such value is refused before any work by the option schema (:func:`mer_keras.jobs.schema.validate`,
the same for the command line, Python and ``config.json``) or by the library config that holds it
(``TrainConfig``, ``SyntheticConfig``, ``LongVideoConfig``, ``SpotConfig``, ``QATOptions``), in one
line naming the option (``--lr nan: ...``) or the file and key (``RUN/config.json: "lr" is ...``).
A learning rate so large that the training loss becomes NaN stops the fit at that epoch, naming
the fold and the epoch, and nothing NaN is written (three cases train a tiny model for that).

Files, under ``numbers/``: ``resume_<what>/config.json`` (an interrupted run's recorded options,
one value edited), ``finished_<what>/`` (a finished run: the corpus's tiny model, its metadata and
a config.json with one value edited), ``out/`` (the parent of any run folder a case might make:
it must stay empty for refused options).
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

from tests.helpers.cases import Case, _call

KIND = "numbers that are not numbers"

#: Options of a tiny synthetic run (the refused ones fail before its data is even made).
_TINY = ["--subjects", "2", "--clips", "2", "--epochs", "2", "--batch-size", "1", "--no-export"]


def _recorded(c, **changes) -> dict:
    """The config.json ``mer-keras train`` records for a tiny ststnet run (2 subjects x 2 clips, DIS
    flow, only the final model), built from the options without training; ``changes`` edited in."""
    from dataclasses import asdict

    from mer_keras.jobs.resolve import resolve_options
    from mer_keras.jobs.train_options import TrainOptions

    opts, rep = resolve_options(TrainOptions(model="ststnet", subjects=2, clips=2, epochs=2, batch_size=1, seed=7,
                                             folds=["none"], export=False, flow_method="dis",
                                             cache_dir=str(c / "cache"), out=str(c / "numbers/out")))
    config = {**asdict(opts), "representation_config": asdict(rep), "dataset": "synthetic",
              "classes": ["negative", "positive", "surprise"],
              "loso_subjects": ["synthetic/sub01", "synthetic/sub02"]}
    return {**config, **changes}


#: Interrupted runs whose config.json has one number edited: name -> (key, value). JSON has no
#: NaN or infinity: Python writes them as the literals NaN and Infinity, which Python reads back.
RESUMED = {"lr_nan_text": ("lr", "nan"), "lr_nan": ("lr", math.nan), "lr_infinity": ("lr", math.inf),
           "batch_size_zero": ("batch_size", 0), "epochs_float": ("epochs", 2.5), "seed_negative": ("seed", -1),
           "subjects_huge": ("subjects", 10 ** 8), "augment_text": ("augment", "false"),
           "backup_minutes_negative": ("backup_minutes", -5.0), "shift_true": ("shift", True)}
#: Finished runs whose config.json has one number edited (read by export and explain).
FINISHED = {"lr_nan_text": ("lr", "nan"), "batch_size_zero": ("batch_size", 0)}


def build(corpus) -> None:
    c = corpus
    root = c / "numbers"
    (root / "out").mkdir(parents=True, exist_ok=True)
    for name, (key, value) in RESUMED.items():
        run = root / f"resume_{name}"
        run.mkdir()
        (run / "config.json").write_text(json.dumps(_recorded(c, **{key: value})))
    run = root / "resume_lr_1e308"  # a valid number that makes the loss NaN at the first step
    run.mkdir()
    (run / "config.json").write_text(json.dumps(_recorded(c, lr=1e308)))
    run = root / "tune_space_nan"  # a tune run's recorded search space with a NaN rate
    run.mkdir()
    (run / "config.json").write_text(json.dumps(_recorded(c, space={"lr": [math.nan]}, groups=3,
                                                          selection_from=None)))
    for name, (key, value) in FINISHED.items():
        run = root / f"finished_{name}"
        run.mkdir()
        shutil.copyfile(c / "models/good.keras", run / "model.keras")
        shutil.copyfile(c / "models/metadata.json", run / "metadata.json")
        config = json.loads((c / "runs/good/config.json").read_text())
        (run / "config.json").write_text(json.dumps({**config, key: value}))


# -- checks: what must hold besides the message ------------------------------------------------

def _nothing_made(root: Path, outcome) -> list[str]:
    """No run folder was made under ``numbers/out`` (the options were refused before any work)."""
    made = sorted(p.name for p in (root / "numbers/out").iterdir())
    return [f"a refused option still made {made}"] if made else []


def _non_finite(path: Path) -> bool:
    """Whether a JSON or CSV file holds NaN or an infinity anywhere."""
    text = path.read_text(errors="replace")
    if path.suffix == ".json":
        found = []

        def constant(name):
            found.append(name)
            return float(name.replace("Infinity", "inf"))

        json.loads(text, parse_constant=constant)
        return bool(found)
    for cell in text.replace("\n", ",").split(","):
        try:
            if not math.isfinite(float(cell)):
                return True
        except ValueError:
            pass
    return False


def _no_nan_written(folder: str):
    """A check: under ``folder`` (a run folder, or the parent of the run folder a case made) no fold
    file, results, predictions or model was written, and no file holds NaN or an infinity."""
    def check(root: Path, outcome) -> list[str]:
        base = root / folder
        out = []
        for path in sorted(p for p in base.rglob("*") if p.is_file()):
            rel = path.relative_to(base)
            if path.name in ("results.json", "predictions.csv", "model.keras", "metadata.json") or \
                    rel.parts[-2:-1] == ("folds",):
                out.append(f"{rel} was written by a fit whose loss was NaN")
            elif path.suffix in (".json", ".csv") and _non_finite(path):
                out.append(f"{rel} holds NaN or an infinity")
        return out
    return check


# -- Python calls ------------------------------------------------------------------------------

def _train(**options):
    """``mer_keras.jobs.train.train`` of ``TrainOptions(**options)`` (output under numbers/out)."""
    def run(train, c):
        import io

        from rich.console import Console

        from mer_keras.jobs.train_options import TrainOptions

        opts = TrainOptions(**{"out": str(c / "numbers/out"), "cache_dir": str(c / "cache"), **options})
        return train(opts, Console(file=io.StringIO()))
    return _call("mer_keras.jobs.train.train", run)


def _tune(**options):
    def run(tune, c):
        import io

        from rich.console import Console

        from mer_keras.jobs.tune import TuneOptions

        opts = TuneOptions(**{"out": str(c / "numbers/out"), "cache_dir": str(c / "cache"), **options})
        return tune(opts, Console(file=io.StringIO()))
    return _call("mer_keras.jobs.tune.tune", run)


def _config(name: str, **values):
    """A library config built from Python: ``name`` is ``package.module.Class``."""
    return _call(name, lambda cls, c: cls(**values))


def cases() -> list[Case]:
    from mer_keras.errors import OptionError

    train = ["train", "--out", "{c}/numbers/out", "--cache-dir", "{c}/cache"]
    tune = ["tune", "--out", "{c}/numbers/out", "--cache-dir", "{c}/cache"]
    k = dict(kind=KIND)
    refused = dict(kind=KIND, check=_nothing_made)
    out = []
    # the command line: every numeric option of train (tune shares them), refused before any work
    for argv, where, reason in [
        (["--lr", "nan"], "--lr nan", "expected a finite number above 0"),
        (["--lr=-inf"], "--lr -inf", "expected a finite number above 0"),
        (["--lr", "0"], "--lr 0.0", "expected a number above 0"),
        (["--batch-size", "0"], "--batch-size 0", "expected a whole number from 1 to 65536"),
        (["--batch-size", "99999999999"], "--batch-size 99999999999", "expected a whole number from 1 to 65536"),
        (["--epochs", "0"], "--epochs 0", "expected a whole number from 1 to 100000"),
        (["--epochs", "10000000"], "--epochs 10000000", "expected a whole number from 1 to 100000"),
        (["--seed", "-1"], "--seed -1", "expected a whole number from 0 to 4294967295"),
        (["--seed", "4294967296"], "--seed 4294967296", "expected a whole number from 0 to 4294967295"),
        (["--subjects", "100000000"], "--subjects 100000000", "expected a whole number from 2 to 1000"),
        (["--clips", "0"], "--clips 0", "expected a whole number from 1 to 10000"),
        (["--input-size", "100000", "--model", "micro_attention"], "--input-size 100000",
         "expected a whole number from 8 to 1024"),
        (["--shift", "1000"], "--shift 1000", "expected a whole number from 0 to 64"),
        (["--shift", "28", "--model", "ststnet"], "--shift 28", "fewer pixels than the input's side (28 px)"),
        (["--workers", "100000"], "--workers 100000", "expected a whole number from 1 to 256"),
        (["--cpu-replicas", "0"], "--cpu-replicas 0", "expected a whole number from 1 to 64"),
        (["--parallel-folds", "100000"], "--parallel-folds 100000", "expected a whole number from 0 to 256"),
        (["--backup-minutes", "nan"], "--backup-minutes nan", "expected a finite number, at least 0"),
        (["--model", "feature_refinement", "--aux-weight", "proposal=nan"], "--aux-weight {\"proposal\": NaN}",
         "the weight of 'proposal' is nan; expected a finite number >= 0"),
        (["--model", "au_convlstm", "--aux-weight", "au=-1"], "--aux-weight {\"au\": -1.0}",
         "the weight of 'au' is -1.0; expected a finite number >= 0"),
    ]:
        out.append(Case(f"train {' '.join(argv)}", "cli", train + argv, 2, where, reason, **refused))
    for argv, where, reason in [
        (["--space", "lr=nan"], "--space 'lr=nan'", "'nan' is not a valid lr (expected a finite number above 0)"),
        (["--space", "batch_size=1e30"], "--space 'batch_size=1e30'", "(expected at most 65536)"),
        (["--space", "epochs=2.5"], "--space 'epochs=2.5'", "is not a valid epochs (expected a whole number)"),
        (["--groups", "100000"], "--groups 100000", "expected a whole number from 3 to 1000"),
        (["--subjects", "4", "--groups", "5"], "--groups 5", "expected 3..4 (the number of subjects)"),
        (["--lr", "inf"], "--lr inf", "expected a finite number above 0"),
    ]:
        out.append(Case(f"tune {' '.join(argv)}", "cli", tune + argv, 2, where, reason, **refused))
    spot = ["spot", "--out", "{c}/numbers/out/spot", "--cache-dir", "{c}/cache"]
    export = ["export", "{c}/runs/good"]
    out += [
        Case("spot --seed -1", "cli", spot + ["--seed", "-1"], 2, "--seed -1", "expected a whole number from 0 to "
             "4294967295", **refused),
        Case("spot --seconds 1e308", "cli", spot + ["--seconds", "1e308"], 2, "--seconds 1e+308",
             "expected a number from 6 to 600", **refused),
        Case("spot --min-snr -1", "cli", spot + ["--min-snr", "-1"], 2, "--min-snr -1.0", "expected a number above 0",
             **refused),
        Case("export --qat-lr nan", "cli", export + ["--format", "tflite", "--quant", "qat", "--qat-lr", "nan"], 2,
             "--qat-lr nan", "expected a finite number above 0", **k),
        Case("export --qat-epochs 0", "cli", export + ["--qat-epochs", "0"], 2, "--qat-epochs 0",
             "expected a whole number from 1 to 10000", **k),
        Case("export --qat-epochs 1000000", "cli", export + ["--qat-epochs", "1000000"], 2, "--qat-epochs 1000000",
             "expected a whole number from 1 to 10000", **k),
        Case("evaluate --seed -1", "cli", ["evaluate", "{c}/runs/good", "--seed", "-1", "--subjects", "2", "--clips",
                                           "1", "--cache-dir", "{c}/cache", "--out", "{c}/numbers/out/eval"], 2,
             "synthetic set: seed -1", "expected a whole number from 0 to 4294967295", **refused),
    ]
    # a run's recorded options edited, read back by --resume, export and explain
    for name, (key, value) in RESUMED.items():
        shown = repr(value) if isinstance(value, str) else str(value)
        out.append(Case(f'resume a run whose config.json has "{key}": {json.dumps(value)} ({name})', "cli",
                        ["train", "--resume", f"{{c}}/numbers/resume_{name}"], 2,
                        f"{{c}}/numbers/resume_{name}/config.json", f'"{key}" is {shown}, expected', **k))
    out += [
        Case("resume with --lr nan given", "cli", ["train", "--resume", "{c}/numbers/resume_lr_1e308", "--lr", "nan"],
             2, "--lr nan", "expected a finite number above 0", **k),
        Case('export a run whose config.json has "lr": "nan"', "cli", ["export", "{c}/numbers/finished_lr_nan_text"],
             2, "{c}/numbers/finished_lr_nan_text/config.json", "\"lr\" is 'nan', expected a finite number above 0",
             **k),
        Case('explain a run whose config.json has "batch_size": 0', "cli",
             ["explain", "{c}/numbers/finished_batch_size_zero", "--sample", "sub01/clip001"], 2,
             "{c}/numbers/finished_batch_size_zero/config.json", '"batch_size" is 0, expected a whole number', **k),
        Case("tune --resume of a run whose config.json has a NaN in its space", "cli",
             ["tune", "--resume", "{c}/numbers/tune_space_nan"], 2, "{c}/numbers/tune_space_nan/config.json",
             '"space" is {"lr": [NaN]}, lr value nan: expected a finite number above 0', **k),
    ]
    # the Python API: option dataclasses given to the job's entry, and the library's configs
    out += [
        Case("TrainOptions(batch_size=0) to train", "call", _train(batch_size=0), OptionError, "--batch-size 0",
             "expected a whole number from 1 to 65536", **refused),
        Case("TrainOptions(lr=nan) to train", "call", _train(lr=math.nan), OptionError, "--lr nan",
             "expected a finite number above 0", **refused),
        Case("TrainOptions(epochs=2.5) to train", "call", _train(epochs=2.5), OptionError, "--epochs 2.5",
             "expected a whole number", **refused),
        Case("TrainOptions(seed=True) to train", "call", _train(seed=True), OptionError, "--seed True",
             "expected a whole number", **refused),
        Case("TrainOptions(lr=10**400) to train", "call", _train(lr=10 ** 400), OptionError, "--lr 1000000",
             "expected a finite number above 0", **refused),
        Case("TrainOptions(workers=None) to train", "call", _train(workers=None), OptionError, "--workers None",
             "expected a whole number", **refused),
        Case("TuneOptions(space={lr: [nan]}) to tune", "call", _tune(space={"lr": [math.nan]}), OptionError,
             "--space {\"lr\": [NaN]}", "lr value nan: expected a finite number above 0", **refused),
        Case("TrainConfig(batch_size=0)", "call", _config("mer_keras.train.config.TrainConfig", batch_size=0),
             OptionError, "--batch-size 0", "expected a whole number from 1 to 65536", **k),
        Case("TrainConfig(lr=inf)", "call", _config("mer_keras.train.config.TrainConfig", lr=math.inf),
             OptionError, "--lr inf", "expected a finite number above 0", **k),
        Case("SyntheticConfig(seed=-1)", "call", _config("mer_keras.data.synthetic.config.SyntheticConfig", seed=-1),
             OptionError, "synthetic set: seed -1", "expected a whole number from 0 to 4294967295", **k),
        Case("SyntheticConfig(subjects=2.5)", "call",
             _config("mer_keras.data.synthetic.config.SyntheticConfig", subjects=2.5), OptionError,
             "synthetic set: subjects 2.5", "expected a whole number from 2 to 1000", **k),
        Case("SyntheticConfig(fps=nan)", "call", _config("mer_keras.data.synthetic.config.SyntheticConfig",
                                                         fps=math.nan),
             OptionError, "synthetic set: fps nan", "expected a finite number", **k),
        Case("LongVideoConfig(fps=nan)", "call", _config("mer_keras.data.synthetic.long.LongVideoConfig", fps=math.nan),
             OptionError, "long videos: fps nan", "frame rate must be within 10..1000 fps", **k),
        Case("LongVideoConfig(micro=(1.5, 3))", "call",
             _config("mer_keras.data.synthetic.long.LongVideoConfig", micro=(1.5, 3)), OptionError,
             "long videos: micro (1.5, 3)", "expected (min, max) whole numbers", **k),
        Case("SpotConfig(min_snr=nan)", "call", _config("mer_keras.runtime.spotting.SpotConfig", min_snr=math.nan),
             ValueError, "spotting parameter min_snr", "must be a finite number > 0, got nan", **k),
        Case("SpotConfig(size=128.5)", "call", _config("mer_keras.runtime.spotting.SpotConfig", size=128.5),
             ValueError, "spotting parameter size", "must be a whole number from 1 to 4096, got 128.5", **k),
        Case("QATOptions(lr=nan)", "call", _config("mer_keras.export.exporter.QATOptions", lr=math.nan),
             OptionError, "--qat-lr nan", "expected a finite number above 0", **k),
        Case("predict(..., fps=nan, spot=True)", "call",
             _call("mer_keras.predict", lambda predict, c: predict(c / "models/good.tflite", [c / "videos/good.mp4"],
                                                                    spot=True, fps=math.nan)),
             OptionError, "--fps nan", "expected a finite number above 0", **k),
        Case("predict(..., onset=-1)", "call",
             _call("mer_keras.predict", lambda predict, c: predict(c / "models/good.tflite", [c / "videos/good.mp4"],
                                                                    onset=-1)),
             OptionError, "--onset -1", "expected at least 0", **k),
        Case("create_model(num_classes=2.5)", "call",
             _call("mer_keras.create_model", lambda create_model, c: create_model("ststnet", 2.5)), OptionError,
             "num_classes", "must be a whole number >= 2, got 2.5", **k),
        Case("create_model(input_shape=(0, 0, 3))", "call",
             _call("mer_keras.create_model", lambda create_model, c: create_model("ststnet", 3, input_shape=(0, 0, 3))),
             OptionError, "input_shape (0, 0, 3)", "expected whole numbers >= 1", **k),
        Case("training batches of batch size 0", "call",
             _call("mer_keras.train.tfdata.training_dataset",
                   lambda f, c: f(__import__("numpy").zeros((4, 28, 28, 3), "float32"), [0, 1, 2, 0], 0, 1)),
             OptionError, "--batch-size 0", "expected a whole number of at least 1", **k),
    ]
    # a learning rate so large that the loss becomes NaN: the fit stops, naming the fold and epoch
    out += [
        Case("train --lr 1e6 (the loss becomes NaN)", "cli",
             ["train", *_TINY, "--folds", "none", "--lr", "1e6", "--out", "{c}/numbers/out_nan_final",
              "--cache-dir", "{c}/cache"], 2, "the final model: the training loss is nan at epoch",
             "the learning rate 1e+06 is likely too large (try a smaller --lr)", kind=KIND,
             check=_no_nan_written("numbers/out_nan_final")),
        Case("train --lr 1e20, folds trained at once (the loss becomes NaN)", "cli",
             ["train", *_TINY, "--model", "ststnet", "--flow-method", "dis", "--parallel-folds", "2", "--no-final",
              "--lr", "1e20", "--out", "{c}/numbers/out_nan_folds", "--cache-dir", "{c}/cache"], 2,
             "fold synthetic/sub01: the training loss is nan at epoch", "the learning rate 1e+20 is likely",
             kind=KIND, check=_no_nan_written("numbers/out_nan_folds")),
        Case('resume a run whose config.json has "lr": 1e308 (the loss becomes NaN)', "cli",
             ["train", "--resume", "{c}/numbers/resume_lr_1e308"], 2,
             "the final model: the training loss is nan at epoch", "the learning rate 1e+308 is likely",
             kind=KIND, check=_no_nan_written("numbers/resume_lr_1e308")),
    ]
    # "numbers: ..." in every name, so that ``pytest -k numbers`` selects this group
    return [replace(case, name=f"numbers: {case.name}") for case in out]
