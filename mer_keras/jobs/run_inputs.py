"""Step *run inputs*: a recorded run's data and inputs rebuilt from its config.json, normalised as it trained."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mer_keras.data.pipeline import RepresentationConfig
from mer_keras.data.records import Dataset
from mer_keras.errors import RunFolderError
from mer_keras.jobs.inputs import DataRequest, Inputs, build_dataset_inputs, load_data
from mer_keras.jobs.train_options import TrainOptions, options_from_config
from mer_keras.runs import RunFolder


def normalised_inputs(inputs: Inputs, data: Dataset, opts: TrainOptions, rep: RepresentationConfig) -> Inputs:
    """The inputs as the run's ``--input-norm`` gives them to training: unchanged, or each database's
    channels moved to the pooled statistics (:func:`mer_keras.preprocess.normalise.normalise_by_database`)."""
    if opts.input_norm in (None, "none"):
        return inputs
    from mer_keras.preprocess.normalise import normalise_by_database

    databases = [r["database"] for r in data.rows]
    return Inputs(normalise_by_database(inputs.x, databases, rep.representation == "flow"), inputs.y)


def load_run_inputs(run: str | Path, console) -> tuple[TrainOptions, RepresentationConfig, Dataset, Inputs, np.ndarray]:
    """Rebuild a finished or interrupted run's data and inputs from its config.json (cache reused).

    Returns:
        (options, representation, dataset, inputs, final) where ``final`` is the (N,) bool mask of
        the records the final model was fitted on (all but a cross-protocol test set).
    Raises:
        MissingFileError: no config.json. RunFolderError: unreadable config, or the data changed.
    """
    from mer_keras.data.protocols import PROTOCOLS

    folder = RunFolder(Path(run))
    config = folder.read_config()
    try:
        opts = options_from_config(config, folder.path / "config.json")
        rep = RepresentationConfig(**config["representation_config"])
    except (KeyError, TypeError) as exc:
        raise RunFolderError(f"{folder.path / 'config.json'}: not a run configuration "
                             f"({type(exc).__name__}: {exc})") from None
    data = load_data(DataRequest.of(opts), console)
    inputs = normalised_inputs(build_dataset_inputs(data, rep, console, cache_dir=opts.cache_dir, workers=opts.workers,
                                                    strict=opts.strict), data, opts, rep)
    if config.get("classes") and list(config["classes"]) != list(data.classes):
        raise RunFolderError(f"{folder.path}: the data's classes {data.classes} "
                             f"differ from the run's {config['classes']}")
    groups = PROTOCOLS[opts.protocol].groups(data.rows, data.test_databases)
    return opts, rep, data, inputs, np.array([g != "test" for g in groups])
