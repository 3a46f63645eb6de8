"""The run folder: its layout, and the one place that reads and writes it.

A run folder ``<out>/<YYYYmmdd-HHMMSS>-<model>-<dataset>[-k]`` holds:

* ``config.json``: every option of the job, the representation, dataset, classes and subjects
  (written first);
* ``folds/<subject>.json``: one per finished fold (written atomically as the fold ends), so a
  killed run resumes where it stopped;
* ``backup/<fold>/``: the fold in progress (Keras ``BackupAndRestore``), removed at the end;
* ``skipped.csv``: records left out, and why;
* ``results.json``, ``predictions.csv``, ``confusion_matrix.png``: the protocol's pooled report;
* ``model.keras``, ``model_fp32.tflite``, ``model_int8.tflite``, ``export_report.json``: the final
  model and its exports; ``metadata.json`` last: its presence marks a complete run.

Every file is written atomically (:mod:`mer_keras.atomic`).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mer_keras import atomic
from mer_keras.data.protocols import fold_stem
from mer_keras.errors import MissingFileError, RunFolderError

#: Files of a run's final model, copied into a merged run from the run that fitted it.
FINAL_MODEL_FILES = ("model.keras", "metadata.json", "model_fp32.tflite", "model_int8.tflite", "export_report.json")
#: A released folder of initial weights for ``--init-from`` holds this file instead of a model
#: (Keras HDF5 weights layout, float16 values; :func:`mer_keras.train.transfer.save_weights_fp16`).
WEIGHTS_FILE = "weights_fp16.h5"


#: The file that marks a run folder as in use by a training process (:meth:`RunFolder.lock`).
LOCK_FILE = ".lock"


def _process_alive(pid) -> bool:
    """Whether a process ``pid`` runs on this host (a PermissionError means it does, as another user)."""
    import os

    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except PermissionError:
        return True
    return True


def check_identity(path: str, saved: dict | None, now: dict) -> None:
    """Refuse a finished fold made by something else than the run resuming it.

    Args:
        path: the fold file (for the message). saved: its recorded identity (None for fold files
            written before identities were recorded: accepted). now: the identity of this run's fold.
    Raises:
        RunFolderError: naming each differing field, as recorded and as now.
    """
    if saved is None:
        return
    diffs = []

    def walk(a, b, prefix):
        for k in sorted(set(a) | set(b)):
            x, y = a.get(k), b.get(k)
            if isinstance(x, dict) and isinstance(y, dict):
                walk(x, y, f"{prefix}{k}.")
            elif x != y:
                diffs.append(f"{prefix}{k} {x!r} (fold file) vs {y!r} (now)")

    walk(saved, now, "")
    if diffs:
        raise RunFolderError(f"{path}: made by another configuration than this run's: {'; '.join(diffs[:4])}"
                             f"{' ...' if len(diffs) > 4 else ''}; resume it with the options it was made with, or "
                             "start a new run")


def record_of(key: str, label: str) -> dict:
    """The record row of a fold file's test key ``<database>/<subject>/<clip>`` and its label."""
    database, subject, clip = key.split("/", 2)
    return {"subject": subject, "clip": clip, "database": database, "label": label}


def run_dir_name(out: str | Path, model: str, dataset: str, when: float | None = None, k: int = 1) -> Path:
    """The path ``<out>/<YYYYmmdd-HHMMSS>-<model>-<dataset>`` (with ``-k`` for k > 1), not created."""
    base = Path(out) / f"{time.strftime('%Y%m%d-%H%M%S', time.localtime(when))}-{model}-{dataset}"
    return base if k == 1 else base.with_name(f"{base.name}-{k}")


def new_run(out: str | Path, model: str, dataset: str, when: float | None = None) -> tuple[RunFolder, int]:
    """Create a new, unique run folder; returns it and its ``k`` (1 for the plain name)."""
    k = 1
    while run_dir_name(out, model, dataset, when, k).exists():
        k += 1
    path = run_dir_name(out, model, dataset, when, k)
    path.mkdir(parents=True)
    return RunFolder(path), k


@dataclass(frozen=True)
class RunFolder:
    """One run folder (see the module docstring for its layout).

    Attributes:
        path: the folder.
    """

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    # -- config ------------------------------------------------------------------------------
    def read_config(self, context: str = "") -> dict:
        """``config.json`` as a dict.

        Raises:
            MissingFileError: no config.json (``context`` prefixes the message). RunFolderError: not JSON,
            or JSON that is not an object.
        """
        path = self.path / "config.json"
        if not path.is_file():
            raise MissingFileError(f"{context}{self.path}: no config.json (not a run folder)")
        try:
            config = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RunFolderError(f"{path}: not readable JSON ({exc})") from None
        if not isinstance(config, dict):
            from mer_keras.models.io import json_type

            raise RunFolderError(f"{path}: holds a JSON {json_type(config)}; expected the run's configuration object")
        return config

    def write_config(self, config: dict) -> None:
        atomic.write_json(self.path / "config.json", config)

    @property
    def complete(self) -> bool:
        """Whether the final model's ``metadata.json`` (written last) exists."""
        return (self.path / "metadata.json").exists()

    # -- folds -------------------------------------------------------------------------------
    def fold_file(self, fold_name: str) -> Path:
        """``RUN/folds/<subject>.json`` (a ``/`` in the fold name becomes ``__``)."""
        return self.path / "folds" / f"{fold_stem(fold_name)}.json"

    def write_fold(self, fold_name: str, classes: Sequence[str], test_keys: Sequence[str], labels: Sequence[str],
                   probabilities: np.ndarray, row: dict, identity: dict | None = None) -> None:
        """Record one finished fold: its test clips, their labels and probabilities, its metrics row,
        and the identity of what produced it (options, representation, training config, data
        fingerprint: :func:`check_identity` compares it on resume) and the machine kind it was
        trained on (:func:`mer_keras.environment.machine_kind`: merge and resume warn when the
        folds of one result come from several kinds)."""
        from mer_keras.environment import current_machine_kind

        atomic.write_json(self.fold_file(fold_name), {
            "subject": fold_name, "classes": list(classes), "test_keys": list(test_keys), "labels": list(labels),
            "probabilities": np.asarray(probabilities).tolist(), "row": row,
            **({"identity": identity} if identity is not None else {}), "machine_kind": current_machine_kind()})

    def read_folds(self, context: str = "not a fold file") -> dict[str, dict]:
        """Every finished fold: ``{fold name: fold dict}`` (keys subject, classes, test_keys, labels,
        probabilities, row), checked for shape.

        Raises:
            RunFolderError: a fold file that is unreadable, lacks a key, whose lengths disagree, or
                whose name differs from the fold it holds (the message names the file).
        """
        folds = {}
        for path in sorted((self.path / "folds").glob("*.json")):
            try:
                fold = json.loads(path.read_text())
                name = fold["subject"]
                n = len(fold["test_keys"])
                fold["row"]  # noqa: B018  (required)
                if len(fold["probabilities"]) != n or len(fold.get("labels", [None] * n)) != n:
                    raise RunFolderError(f"{path}: its test keys, labels and probabilities differ in length")
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise RunFolderError(f"{path}: {context} ({type(exc).__name__}: {exc})") from None
            if self.fold_file(name) != path:
                raise RunFolderError(f"{path}: holds fold {name!r}, not the fold its name says")
            folds[name] = fold
        return folds

    def completed_folds(self, test_keys: dict[str, list[str]], classes: Sequence[str] = ()) -> dict[str, dict]:
        """Finished folds of an interrupted run, checked against the data as it is now (resume).

        Args:
            test_keys: {fold name: the test clips' keys} of the folds the data gives now.
            classes: the data's classes.
        Returns:
            {fold name: {"probabilities": (n_test, K) float32, "row": dict}}.
        Raises:
            RunFolderError: a fold file unreadable, of an unknown fold, or whose test clips or
                classes differ from the data now.
        """
        completed = {}
        for name, saved in self.read_folds("not a fold file of this run").items():
            path = self.fold_file(name)
            if name not in test_keys:
                raise RunFolderError(f"{path}: not a fold file of this run (KeyError: {name!r})")
            if saved["test_keys"] != list(test_keys[name]):
                raise RunFolderError(f"{path}: its test clips differ from the data now (the data changed since the "
                                     "run started)")
            if classes and saved.get("classes", list(classes)) != list(classes):
                raise RunFolderError(f"{path}: its classes {saved['classes']} differ from the data's {list(classes)}")
            completed[name] = {"probabilities": np.asarray(saved["probabilities"], np.float32), "row": saved["row"],
                               "identity": saved.get("identity"), "path": str(path)}
        return completed

    # -- lock --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, what: str = "training"):
        """Hold ``RUN/.lock`` while a process trains (or exports) in this folder.

        The lock records the process id, host, start time and ``what`` the process does. A lock of
        a process that no longer runs on this host is taken over; a live one, or one from another
        host, is refused.

        Raises:
            RunFolderError: another process holds the folder (names it and how to clear the lock).
        """
        import os
        import socket

        path = self.path / LOCK_FILE
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
              "doing": what}
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    holder = json.loads(path.read_text())
                except (OSError, ValueError):
                    holder = {}
                if holder.get("host") == me["host"] and not _process_alive(holder.get("pid")):
                    path.unlink(missing_ok=True)  # its process is gone: a killed run's lock
                    continue
                raise RunFolderError(f"{self.path}: another mer-keras process (pid {holder.get('pid')} on "
                                     f"{holder.get('host')}, since {holder.get('started')}) is "
                                     f"{holder.get('doing', 'training')} in this run "
                                     f"folder; wait for it or stop it (if that machine crashed, delete {path})"
                                     ) from None
            with os.fdopen(fd, "w") as fh:
                json.dump(me, fh)
            break
        try:
            yield self
        finally:
            try:
                if json.loads(path.read_text()).get("pid") == me["pid"]:
                    path.unlink()
            except (OSError, ValueError):
                pass

    # -- backups -----------------------------------------------------------------------------
    @property
    def backup_root(self) -> Path:
        """``RUN/backup``: per-fold training backups (``<fold>``, ``final``)."""
        return self.path / "backup"

    def remove_backups(self) -> None:
        shutil.rmtree(self.backup_root, ignore_errors=True)

    def history_path(self, fold_name: str) -> Path:
        """``RUN/history/<fold>.csv``: the fold's per-epoch training figures."""
        return self.path / "history" / f"{fold_stem(fold_name)}.csv"

    def plot_training(self, results: dict, cover: str) -> None:
        """``learning_curves.png`` from ``RUN/history/*.csv`` and ``uf1_per_fold.png`` from the
        ``results`` written by :meth:`write_results`; their titles say which folds they cover
        (``cover``: "all 12" or "3 of 12")."""
        import pandas as pd

        from mer_keras.metrics import plot_fold_uf1, plot_learning_curves

        what = f"{results.get('model', '')} on {results.get('dataset', '')}"
        histories = {p.stem: pd.read_csv(p) for p in sorted((self.path / "history").glob("*.csv"))
                     if p.stem != "final"}
        if histories:
            plot_learning_curves(histories, self.path / "learning_curves.png",
                                 title=f"{what}: training loss and accuracy of {len(histories)} fold(s) "
                                       f"({cover} folds in this run)")
        if results.get("folds"):
            plot_fold_uf1(results["folds"], results.get("per_database") or {}, self.path / "uf1_per_fold.png",
                          title=f"{what}: UF1 per fold ({cover} folds; pooled "
                                f"{results['overall']['uf1']:.3f})")

    # -- reports -----------------------------------------------------------------------------
    def write_skipped(self, skipped: Sequence[tuple[str, str]]) -> None:
        """``skipped.csv``: (where, why) of every record left out."""
        import pandas as pd

        with atomic.atomic_path(self.path / "skipped.csv") as tmp:
            pd.DataFrame(list(skipped), columns=["where", "why"]).to_csv(tmp, index=False)

    def write_results(self, info: dict, report: dict, rows: Sequence[dict], probs: np.ndarray,
                      fold_rows: Sequence[dict], title: str) -> dict:
        """Write a protocol's pooled report: ``results.json``, ``predictions.csv``, ``confusion_matrix.png``.

        Args:
            info: run description copied into results.json (model, dataset, protocol, ...).
            report: the protocol's report (:meth:`mer_keras.data.protocols.Protocol.report`).
            rows: per record {"subject", "clip", "database", "label"}; probs: (N, K) float32, NaN
                rows for records in no finished fold.
            fold_rows: one dict per finished fold. title: the confusion matrix's title.
        Returns:
            The results dict as written.
        """
        import pandas as pd

        from mer_keras.metrics import plot_confusion_matrix

        classes = report["classes"]
        tested = ~np.isnan(probs).any(1)
        pred = np.where(tested, np.nan_to_num(probs).argmax(1), -1)
        pred_rows = [{**r, "prediction": classes[pred[i]],
                      **{f"p_{c}": float(probs[i, k]) for k, c in enumerate(classes)}}
                     for i, r in enumerate(rows) if tested[i]]
        with atomic.atomic_path(self.path / "predictions.csv") as tmp:
            pd.DataFrame(pred_rows).to_csv(tmp, index=False)
        results = {**info, **report, "folds": list(fold_rows)}
        atomic.write_json(self.path / "results.json", results)
        plot_confusion_matrix(report["confusion_matrix"], classes, self.path / "confusion_matrix.png", title=title)
        return results
