"""The data-to-inputs steps every job shares: load a dataset, preprocess it through the cache,
stack the network inputs.

Console output (progress bars, what was loaded and skipped) happens here, not in the library.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mer_keras.data.pipeline import RepresentationConfig, build_inputs, image_inputs, prepare
from mer_keras.data.records import Dataset
from mer_keras.errors import DataError, OptionError
from mer_keras.jobs.report import print_warnings
from mer_keras.preprocess.cache import default_cache_dir


def progress_bar(console):
    """A rich progress display with a description, bar, m/n count, info field, elapsed time and
    the time remaining (estimated by rich from the recent rate)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=console, transient=False)


def completed_count(progress, task) -> int:
    """How far a task of a rich ``Progress`` is (its completed count)."""
    return int(next(t.completed for t in progress.tasks if t.id == task))


@dataclass(frozen=True)
class DataRequest:
    """Which dataset a job reads: the data fields of a job's options (no defaults of its own:
    they are the job's, see :class:`mer_keras.jobs.train_options.TrainOptions`).

    Attributes:
        data: a name of the dataset table (:func:`mer_keras.data.datasets.dataset_spec`). root: its
            folder or manifest CSV.
        protocol: ``loso``, ``composite`` or ``cross``; test_data / test_root: the cross protocol's
            test database. strict: stop at the first bad record. apex: apex policy for sheets
            without one. subjects, clips, seed, faces: the synthetic set. cache_dir: cache root.
            synthetic_expression: ``micro`` (default) or ``macro`` synthetic clips.
            synthetic_capture: ``single`` (default) or ``databases`` (each pseudo-subject filmed
            as one composite database: :data:`mer_keras.data.synthetic.config.CAPTURE_PROFILES`).
    """

    data: str
    root: str | None
    protocol: str
    test_data: str | None
    test_root: str | None
    strict: bool
    apex: str
    subjects: int
    clips: int
    seed: int
    faces: str | None
    cache_dir: str | None
    synthetic_expression: str = "micro"
    synthetic_capture: str = "single"

    @classmethod
    def of(cls, opts) -> DataRequest:
        """The data fields of a job's options object (e.g. :class:`~mer_keras.jobs.train_options.TrainOptions`)."""
        from dataclasses import fields

        return cls(**{f.name: getattr(opts, f.name) for f in fields(cls)})


def load_data(req: DataRequest, console) -> Dataset:
    """Step *load data*: the synthetic default, a database, the composite, a manifest, or the
    cross-database pair (``protocol == "cross"``).

    Raises:
        OptionError: options that do not fit the protocol. DataError, MissingFileError: bad data.
    """
    from mer_keras.data.database import describe
    from mer_keras.data.datasets import dataset_spec, load_cross, load_dataset, registered_datasets

    spec = dataset_spec(req.data)
    if req.protocol == "cross":
        if spec.generated or not req.test_data:
            raise OptionError("--protocol cross needs --data TRAIN_DB and --test-data TEST_DB")
        ds = load_cross(req.data, req.root, req.test_data, req.test_root, req.strict, req.apex)
        n_test = sum(s.database in ds.test_databases for s in ds.samples)
        console.print(f"cross-database: train {req.data} ({len(ds.samples) - n_test} clips) -> test {req.test_data} "
                      f"({n_test} clips) in classes {', '.join(ds.classes)}", soft_wrap=True)
        return ds
    if req.protocol not in spec.protocols:
        runs_on = [s.name for s in registered_datasets() if req.protocol in s.protocols]
        raise OptionError(f"--protocol {req.protocol} runs on --data {' or '.join(runs_on)}")
    if spec.generated:
        from mer_keras.data.synthetic import SyntheticConfig

        cfg = SyntheticConfig.for_expression(req.synthetic_expression, subjects=req.subjects,
                                             clips_per_subject=req.clips, seed=req.seed,
                                             capture=req.synthetic_capture)
        with progress_bar(console) as prog:
            task = prog.add_task("synthetic clips", total=cfg.subjects * cfg.clips_per_subject, info="")
            ds = load_dataset(req.data, cache_dir=req.cache_dir, synthetic=cfg, faces=req.faces,
                              progress=lambda d, t: prog.update(task, completed=d))
            prog.update(task, completed=len(ds.samples))
        console.print(f"synthetic data: {len(ds.samples)} {req.synthetic_expression}-expression clips of "
                      f"{cfg.subjects} subjects, cached at {ds.root}", soft_wrap=True)
        return ds
    ds = load_dataset(req.data, req.root, strict=req.strict, apex_policy=req.apex, cache_dir=req.cache_dir)
    console.print(f"{ds.name}: {len(ds.samples) + len(ds.images)} samples of {len(ds.subjects)} subjects in classes "
                  f"{', '.join(ds.classes)}; {len(ds.skipped)} skipped", soft_wrap=True)
    for where, why in ds.skipped[:5]:
        console.print(f"  skipped {describe(where, why)}", soft_wrap=True, highlight=False)
    print_warnings(ds.warnings, console)
    for db, c in ds.counts.items():
        console.print(f"  {db}: {c}", highlight=False)
    return ds


def load_data_for_model(data: str, root: str | None, strict: bool, apex: str, cache_dir: str | None, meta: dict,
                        console, subjects: int = 12, clips: int = 20, seed: int = 0) -> Dataset:
    """Step *load data* for a trained model (``evaluate --data``, ``predict --data``): the records of
    ``data`` under ``root`` (LOSO protocol; ``subjects``, ``clips`` and ``seed`` only for the
    synthetic set), with a note when ``meta`` (the model's metadata.json) says it was fitted on
    this dataset: its own training clips, not a test.

    Raises:
        OptionError, DataError, MissingFileError: as :func:`load_data`.
    """
    req = DataRequest(data=data, root=root, protocol="loso", test_data=None, test_root=None, strict=strict,
                      apex=apex, subjects=subjects, clips=clips, seed=seed, faces=None, cache_dir=cache_dir)
    ds = load_data(req, console)
    if meta.get("dataset") == ds.name:
        console.print(f"[yellow]note:[/] the model was fitted on {ds.name}: these are its fit to its own training "
                      "clips, not a test", soft_wrap=True)
    return ds


@dataclass
class Inputs:
    """The network inputs of a dataset's records, in ``Dataset.rows`` order.

    Attributes:
        x: (N, *input_shape) float32 in [0, 255]. y: (N,) int class indices into ``classes``.
    """

    x: np.ndarray
    y: np.ndarray


def build_dataset_inputs(ds: Dataset, rep: RepresentationConfig, console, cache_dir=None, workers: int = 1,
                         strict: bool = False) -> Inputs:
    """Step *build inputs*: preprocess every clip (through the cache) and stack the inputs of ``ds``.

    Clips that fail preprocessing (no face, unreadable frames) are dropped from ``ds.samples``
    and added to ``ds.skipped`` (fatal with ``strict``).

    Raises:
        DataError: a bad clip with ``strict``, or image rows for a sequence model.
    """
    cache = default_cache_dir(cache_dir)
    errors = {}
    if ds.samples:  # ready input images (e.g. the published composite flow images) need no preprocessing
        with progress_bar(console) as prog:
            task = prog.add_task(f"{rep.representation}", total=len(ds.samples), info="")
            errors = prepare(ds.samples, rep, cache, workers=workers,
                             progress=lambda d, t: prog.update(task, completed=d))
    if errors:
        first = min(errors)
        if strict:
            raise DataError(f"{ds.samples[first].source or ds.samples[first].key}: {errors[first]}")
        ds.skipped += [(ds.samples[i].source or ds.samples[i].key, errors[i]) for i in sorted(errors)]
        ds.samples = [s for i, s in enumerate(ds.samples) if i not in errors]
        console.print(f"{len(errors)} clip(s) skipped in preprocessing, e.g. {errors[first]}", soft_wrap=True)
    rows = ds.rows
    x = build_inputs(ds.samples, rep, cache_dir=cache)
    if ds.images:
        if rep.representation == "sequence":
            raise DataError(f"{ds.name}: precomputed image rows cannot feed the sequence representation; give "
                            "frame folders or videos")
        x = np.concatenate([x, image_inputs([r.path for r in ds.images], rep.size, rep.channels, rep.regions)])
    y = np.array([ds.classes.index(r["label"]) for r in rows])
    return Inputs(x, y)


def check_trainable(data: Dataset, root=None) -> None:
    """Step *check classes* of the jobs that train: a classifier needs two classes.

    Args:
        root: where the data were read from (the manifest CSV), for the message.
    Raises:
        DataError: the data holds one class, naming where its labels come from and the class.
    """
    if len(data.classes) < 2:
        found = f"one class ({data.classes[0]!r}" if data.classes else "no class ("
        where = f"{data.root or root}: the label column holds" if data.name == "manifest" else \
            f"{data.name}: the data hold"
        raise DataError(f"{where} {found}, {len(data.samples) + len(data.images)} usable record(s)); a classifier "
                        "needs at least 2")
