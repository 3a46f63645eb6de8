"""``mer-keras ensemble``: average the class probabilities of finished runs over the same clips.

Runs of one protocol on one dataset (several seeds of a recipe, or several models on the same
input) are combined clip by clip: each fold's probabilities are the mean of the members' (soft
voting), and the pooled report is computed from those means. Nothing is chosen by looking at the
test subjects: the members are given, every one weighs the same. When every member has a final
model, their average is saved as one Keras model (one input, the members side by side, an
``Average`` layer named ``predictions``) and exported like a run's final model, so ``edge.run``,
``evaluate`` and ``export`` use the ensemble as they use a run.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mer_keras import atomic
from mer_keras.errors import OptionError, RunFolderError
from mer_keras.jobs.schema import option, validate
from mer_keras.runs import RunFolder, new_run, record_of

#: config.json keys every member must share: the clips, their labels and the input.
SAME_DATA = ("dataset", "data", "root", "protocol", "classes", "loso_subjects", "representation_config")


@dataclass
class EnsembleOptions:
    """Options of ``mer-keras ensemble``."""

    runs: list[str] = option(help="Finished run folders on the same data and protocol (two or more).", argument=True)
    out: str | None = option(None, "Parent folder of the ensemble's run folder (default: the first run's).")
    export: bool = option(True, "Save the averaged final models as one model with TFLite fp32 and int8 exports "
                                "(when every member has a final model).", secondary="--no-export")


def average_model(models, name: str):
    """One Keras model averaging the softmax outputs of ``models`` (same input shape).

    Args:
        models: Keras models (B, ...) float32 -> (B, K) float32 probabilities.
    Returns:
        ``keras.Model``: (B, ...) -> (B, K) float32, the mean of the members' outputs; the members
        are nested layers ``member0``, ``member1``, ...; the output layer is named ``predictions``.
    Raises:
        OptionError: members with different input shapes or class counts.
    """
    from mer_keras._keras import keras

    shapes = {tuple(m.input_shape[1:]) for m in models}
    widths = {m.output_shape[-1] for m in models}
    if len(shapes) != 1 or len(widths) != 1:
        raise OptionError(f"members differ in input shape {sorted(shapes)} or classes {sorted(widths)}")
    inp = keras.Input(shape=shapes.pop(), name="input")
    outs = []
    for j, m in enumerate(models):
        m._name = f"member{j}"
        outs.append(m(inp))
    return keras.Model(inp, keras.layers.Average(name="predictions")(outs), name=name)


def _same(key: str, a, b) -> bool:
    """Equal values; for ``root`` the same folder written two ways (relative to where each run
    started, or absolute: both resolve, from here, to one existing path); for
    ``representation_config`` the same config recorded before and after a field was added."""
    if a == b:
        return True
    if key == "root" and a and b:
        pa, pb = Path(a).resolve(), Path(b).resolve()
        return pa == pb and pa.exists()
    if key == "representation_config" and a and b:  # fields added later take their defaults (what older runs used)
        from mer_keras.preprocess.representation import RepresentationConfig

        return RepresentationConfig.from_dict(dict(a)) == RepresentationConfig.from_dict(dict(b))
    return False


def _members(folders: list[RunFolder]) -> tuple[list[dict], list[dict]]:
    from mer_keras.jobs.outputs import not_a_folder

    configs, folds = [], []
    for run in folders:
        if not run.path.is_dir():
            raise RunFolderError(f"{run.path}: {not_a_folder(run.path)}; expected a "
                                 "finished run folder (config.json, folds/, results.json)")
        config = run.read_config("cannot ensemble ")
        if configs:
            for key in SAME_DATA:
                if not _same(key, config.get(key), configs[0].get(key)):
                    raise OptionError(f"{run.path}: {key} is {config.get(key)!r} but {folders[0].path} has "
                                      f"{configs[0].get(key)!r}; an ensemble averages runs over the same clips and "
                                      "inputs")
        configs.append(config)
        folds.append(run.read_folds())
    return configs, folds


def ensemble(opts: EnsembleOptions, console=None) -> Path:
    """Average finished runs clip by clip into a new run folder and return it.

    The folder holds config.json (the first member's, with ``ensemble_of``), folds/ (each fold's
    mean probabilities), results.json (pooled report, with ``members``: each member's own pooled
    figures), predictions.csv, confusion_matrix.png, and with ``export`` the averaged final model
    (model.keras, model_fp32.tflite, model_int8.tflite, export_report.json, metadata.json).

    Raises:
        OptionError: fewer than two runs, or runs on different data, protocol, classes or input.
        RunFolderError: a member without results.json, or folds whose test clips differ.
        MissingFileError: a folder is not a run.
    """
    from mer_keras.data.protocols import PROTOCOLS
    from mer_keras.jobs.outputs import check_writable
    from mer_keras.jobs.report import print_report

    validate(opts)
    if len(opts.runs) < 2:
        raise OptionError("ensemble needs two or more run folders")
    folders = [RunFolder(Path(r)) for r in opts.runs]
    check_writable(Path(opts.out) if opts.out else folders[0].path.parent)  # before anything is read
    if len({f.path.resolve() for f in folders}) != len(folders):
        raise OptionError("a run is given twice: it would weigh double")
    configs, member_folds = _members(folders)
    members, first_results = member_results(folders, configs, member_folds)
    classes = list(configs[0]["classes"])
    models = sorted({m["model"] for m in members})
    name = models[0] if len(models) == 1 else "+".join(models)
    dest, _ = new_run(Path(opts.out) if opts.out else folders[0].path.parent, "ensemble",
                      str(configs[0].get("dataset", "data")))
    rows, y, probs, fold_rows = averaged_folds(member_folds, classes, dest)
    from mer_keras.environment import differences

    env_warnings = differences({str(r.path): c.get("environment") for r, c in zip(folders, configs)})
    protocol = PROTOCOLS[configs[0].get("protocol") or "loso"]
    report = protocol.report(y, probs, classes, [r["database"] for r in rows])
    info = {"model": name, "dataset": configs[0].get("dataset"), "protocol": configs[0].get("protocol"),
            "representation": (configs[0].get("representation_config") or {}).get("representation"),
            "counts": first_results.get("counts", {}), "skipped": first_results.get("skipped", 0),
            "ensemble_of": members, "combination": "mean of the members' class probabilities, equal weights",
            "warnings": env_warnings}
    dest.write_results(info, report, rows, probs, fold_rows,
                       title=f"ensemble of {len(members)} ({name}), UF1 {report['overall']['uf1']:.3f}")
    dest.write_config({**configs[0], "model": configs[0]["model"] if len(models) == 1 else name,
                       "ensemble_of": [m["run"] for m in members],
                       "environments": {str(r.path): c.get("environment") for r, c in zip(folders, configs)}})
    if console is not None:
        from mer_keras.jobs.report import print_warnings

        print_warnings(env_warnings, console)
        for m in members:
            console.print(f"  member {m['run']}: UF1 {m['uf1']:.3f}, UAR {m['uar']:.3f}", soft_wrap=True)
        print_report(report, console)
    finals = [r for r in folders if (r.path / "model.keras").is_file() and (r.path / "metadata.json").is_file()]
    if opts.export and len(finals) == len(folders):
        _write_average_model(folders, configs, name, dest, console)
    elif opts.export and console is not None:
        console.print(f"no averaged model: {len(folders) - len(finals)} member(s) have no final model", soft_wrap=True)
    return dest.path


def member_results(folders: list[RunFolder], configs: list[dict], member_folds: list[dict]):
    """Step *check the members*: each run finished (its pooled UF1 and UAR read) and testing the same
    subjects on the same clips as the first, before anything is written.

    Returns:
        ([{"run", "model", "seed", "uf1", "uar"} per member], the first member's results.json).
    Raises:
        RunFolderError: an unfinished member, other folds, or other test clips in a fold (named).
    """
    from mer_keras.models.io import read_json

    members = []
    for run in folders:
        if not (run.path / "results.json").is_file():
            raise RunFolderError(f"{run.path}: no results.json (an unfinished run); finish it with --resume first")
        res = read_json(run.path / "results.json")
        try:
            uf1, uar = float(res["overall"]["uf1"]), float(res["overall"]["uar"])
        except (KeyError, TypeError, ValueError):
            raise RunFolderError(f"{run.path / 'results.json'}: no overall uf1 and uar (not the results of a "
                                 "finished run)") from None
        members.append({"run": str(run.path), "model": res.get("model"), "seed": configs[len(members)].get("seed"),
                        "uf1": uf1, "uar": uar})
        if len(members) == 1:
            first_results = res  # its counts and skipped clips describe the data every member shares
    names = set(member_folds[0])
    for run, folds in zip(folders[1:], member_folds[1:]):
        if set(folds) != names:
            raise RunFolderError(f"{run.path} has folds {sorted(set(folds) ^ names)[:5]} that {folders[0].path} "
                                 "has not (or the reverse): the members must test the same subjects")
    for fold_name in sorted(names):  # every check before anything is written
        first = member_folds[0][fold_name]
        for run, folds in zip(folders[1:], member_folds[1:]):
            if folds[fold_name]["test_keys"] != first["test_keys"]:
                raise RunFolderError(f"{run.fold_file(fold_name)}: its test clips differ from "
                                     f"{folders[0].fold_file(fold_name)}")
    return members, first_results


def averaged_folds(member_folds: list[dict], classes: list[str], dest: RunFolder):
    """Step *average*: each fold's mean of the members' probabilities, scored and written as the
    ensemble's fold file.

    Returns:
        (records of the clips, (N,) int labels, (N, K) float32 mean probabilities, the folds' rows).
    """
    from mer_keras.metrics import compute_metrics

    rows, y, probs, fold_rows = [], [], [], []
    for fold_name in sorted(member_folds[0]):
        first = member_folds[0][fold_name]
        p = np.mean([np.asarray(folds[fold_name]["probabilities"], np.float32) for folds in member_folds], axis=0)
        labels = first["labels"]
        for key, label, pk in zip(first["test_keys"], labels, p):
            rows.append(record_of(key, label))
            y.append(classes.index(label))
            probs.append(pk)
        yt = [classes.index(label) for label in labels]
        m = compute_metrics(yt, p.argmax(1), classes)
        row = {"subject": fold_name, "n_test": len(labels), "accuracy": m["accuracy"], "uf1": m["uf1"],
               "uar": m["uar"]}
        fold_rows.append(row)
        dest.write_fold(fold_name, classes, first["test_keys"], labels, p, row)
    return rows, np.array(y), np.array(probs, np.float32), fold_rows


def _write_average_model(folders: list[RunFolder], configs: list[dict], name: str, dest: RunFolder, console) -> None:
    """The members' final models averaged into one, saved and exported as a run's final model."""

    from rich.console import Console

    from mer_keras.export.metadata import build_metadata, sha256_file
    from mer_keras.jobs.final_model import export_tflite
    from mer_keras.jobs.run_inputs import load_run_inputs
    from mer_keras.models.io import load_model, read_json, save_keras

    console = console or Console(quiet=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)  # "ststnet+off_apexnet": TensorFlow scope names allow no '+'
    model = average_model([load_model(r.path / "model.keras") for r in folders], name=f"{safe}_ensemble")
    path = dest.path / "model.keras"
    save_keras(model, path)
    files = {"model.keras": {"format": "keras", "sha256": sha256_file(path), "bytes": path.stat().st_size}}
    _, rep, data, inputs, final = load_run_inputs(folders[0].path, console)
    exported = export_tflite(model, dest.path, inputs.x[final], inputs.y[final], data.classes)
    atomic.write_json(dest.path / "export_report.json", exported)
    for fname, info in exported.items():
        files[fname] = {k: v for k, v in info.items() if k != "parity"}
        console.print(f"{fname}: {info['bytes'] / 1e6:.2f} MB, argmax agreement with Keras "
                      f"{info['parity']['argmax_agreement']:.3f}")
    first_meta = read_json(folders[0].path / "metadata.json")
    meta = build_metadata(name, data.classes, asdict(rep), rep.input_shape, data.name, configs[0].get("protocol"),
                          files, window=first_meta.get("window"), apex_policy=first_meta.get("apex_policy"))
    atomic.write_json(dest.path / "metadata.json", {**meta, "ensemble_of": [str(r.path) for r in folders]})
