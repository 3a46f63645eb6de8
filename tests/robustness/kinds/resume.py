"""Resume and concurrency: fold files of another configuration, options given with --resume, a run
folder locked by another process (mer_keras.runs.check_identity, RunFolder.lock, jobs.train.resume_with)."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

from tests.helpers.cases import Case

KIND = "resume and concurrency"
#: The interrupted run every case starts from: fold synthetic/sub01 finished, sub02 not started.
BASE = "resume/base"


def _interrupted_run(c) -> Path:
    """A tiny synthetic run (2 subjects x 2 clips, 1 epoch, LEARNet) stopped after its first fold."""
    import io

    from rich.console import Console

    from mer_keras.jobs.train import train
    from mer_keras.jobs.train_options import TrainOptions

    out = c / "resume" / "trained"
    run = train(TrainOptions(subjects=2, clips=2, epochs=1, folds=["synthetic/sub01"], final=False, export=False,
                             cache_dir=str(c / "cache"), out=str(out)), Console(file=io.StringIO()))
    base = c / BASE
    shutil.copytree(run, base)
    for name in ("results.json", "predictions.csv", "confusion_matrix.png", "learning_curves.png",
                 "uf1_per_fold.png"):
        (base / name).unlink(missing_ok=True)
    return base


def _variant(c, name: str, config: dict | None = None, fold: dict | None = None, lock: dict | None = None) -> None:
    """A copy of the interrupted run with config.json keys, the fold file's identity or a lock changed."""
    dest = c / "resume" / name
    shutil.copytree(c / BASE, dest)
    if config:
        path = dest / "config.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **config}))
    if fold:
        path = next((dest / "folds").glob("*.json"))
        saved = json.loads(path.read_text())
        for key, value in fold.items():
            part, _, field = key.partition(".")
            if field:
                saved["identity"][part][field] = value
            else:
                saved["identity"][part] = value
        path.write_text(json.dumps(saved))
    if lock:
        (dest / ".lock").write_text(json.dumps(lock))


def build(c) -> None:
    base = _interrupted_run(c)
    recorded = json.loads((base / "config.json").read_text())
    _variant(c, "model_edited", config={"model": "ststnet", "representation": None})
    _variant(c, "lr_edited", config={"lr": recorded["lr"] * 2})
    _variant(c, "epochs_edited", config={"epochs": 3})
    _variant(c, "seed_edited", config={"seed": 7})
    _variant(c, "augment_edited", config={"augment": not recorded["augment"]})
    _variant(c, "data_changed", fold={"data": "0000000000000000"})
    _variant(c, "representation_changed", fold={"representation.size": 64})
    _variant(c, "locked_here", lock={"pid": os.getpid(), "host": socket.gethostname(), "started": "now"})
    _variant(c, "locked_elsewhere", lock={"pid": 1, "host": "another-host.example", "started": "yesterday"})
    _variant(c, "stale_lock", lock={"pid": 2 ** 22 + 12345, "host": socket.gethostname(), "started": "yesterday"})
    for name in ("explicit",):
        shutil.copytree(base, c / "resume" / name)


def _finished_and_unlocked(name: str):
    def check(root: Path, outcome) -> list[str]:
        run = root / "resume" / name
        out = []
        if not (run / "results.json").exists():
            out.append("results.json not written")
        if (run / ".lock").exists():
            out.append("the lock was left behind")
        return out
    return check


def _untouched(name: str):
    """A check: the refused run folder still holds its fold file and gained no results or lock of ours."""
    def check(root: Path, outcome) -> list[str]:
        run = root / "resume" / name
        out = []
        if not list((run / "folds").glob("*.json")):
            out.append("the finished fold file is gone")
        if (run / "results.json").exists():
            out.append("results.json was written from a refused resume")
        return out
    return check


def cases() -> list[Case]:
    def resume(name, *extra):
        return ["train", "--resume", f"{{c}}/resume/{name}", *extra]

    out = []
    for name, field in (("model_edited", "options.model"), ("lr_edited", "options.lr"),
                        ("epochs_edited", "options.epochs"), ("seed_edited", "options.seed"),
                        ("augment_edited", "options.augment"), ("data_changed", "data"),
                        ("representation_changed", "representation.size")):
        out.append(Case(f"resume a run whose {field} changed since its finished fold", "cli", resume(name), 2,
                        f"{{c}}/resume/{name}/folds/synthetic__sub01.json: made by another configuration",
                        f" {field} ", kind=KIND, check=_untouched(name)))
    for flag, value, said in (("--model", "ststnet", "--model 'ststnet' (the run has 'learnet')"),
                              ("--epochs", "5", "--epochs 5 (the run has 1)"), ("--lr", "0.5", "--lr 0.5 (the run has"),
                              ("--seed", "3", "--seed 3 (the run has 0)"),
                              ("--batch-size", "4", "--batch-size 4 (the run has 32)"),
                              ("--representation", "apex", "--representation 'apex' (the run has 'dynamic_image')")):
        out.append(Case(f"resume with {flag} {value} given", "cli", resume("explicit", flag, value), 2,
                        "--resume {c}/resume/explicit", said, kind=KIND, check=_untouched("explicit")))
    out += [
        Case("resume a run another live process is training", "cli", resume("locked_here"), 2,
             "{c}/resume/locked_here", f"another mer-keras process (pid {os.getpid()} on {socket.gethostname()}",
             kind=KIND, check=_untouched("locked_here")),
        Case("resume a run locked from another host", "cli", resume("locked_elsewhere"), 2,
             "{c}/resume/locked_elsewhere", "(if that machine crashed, delete", kind=KIND,
             check=_untouched("locked_elsewhere")),
        Case("resume a run whose lock was left by a killed process", "cli", resume("stale_lock"), 0,
             "{c}/resume/stale_lock", "resuming", kind=KIND, check=_finished_and_unlocked("stale_lock")),
    ]
    return out
