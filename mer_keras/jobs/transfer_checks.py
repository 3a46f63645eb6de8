"""Step *check the initial weights*: transfer learning that would leak test subjects, and a model that
cannot take the input, refused before any training.
"""

from __future__ import annotations

from pathlib import Path

from mer_keras.data.pipeline import RepresentationConfig
from mer_keras.data.records import Dataset
from mer_keras.errors import OptionError
from mer_keras.jobs.train_options import TrainOptions


def check_init_source(init_from: str, dataset: str, protocol: str, console) -> None:
    """Refuse transfer learning from a final model fitted on the data being evaluated.

    A run's ``model.keras`` is fitted on every subject, so starting LOSO on the same dataset from
    it puts each test subject in the initial weights. The source's ``metadata.json`` (beside the
    model, or in the run folder) names its dataset.

    Raises:
        OptionError: the source was trained on ``dataset`` (or, for a composite, on a part of it).
        ModelFileError: its metadata.json is not JSON.
    """
    from mer_keras.models.io import read_json

    src = Path(init_from)
    meta_path = (src if src.is_dir() else src.parent) / "metadata.json"
    if not meta_path.is_file():
        console.print(f"[yellow]note:[/] {init_from} has no metadata.json beside it: make sure it never saw the "
                      "test subjects of this run", soft_wrap=True)
        return
    from mer_keras.data.datasets import databases_of

    source = read_json(meta_path).get("dataset")  # names an empty file, bad JSON or a list
    if isinstance(source, str) and databases_of(source) & databases_of(dataset):
        raise OptionError(f"--init-from {init_from} was trained on {source}, which holds the test subjects of this "
                          f"{protocol} run on {dataset}: its weights would leak them. Pre-train on other data.")


def probe_model(opts: TrainOptions, rep: RepresentationConfig, data: Dataset):
    """The model the folds will build, built once before any fold, so that an input size its layers
    cannot take (``--input-size``) fails at once with the reason.

    Raises:
        OptionError: the builder refuses ``rep.input_shape`` (Keras' message is quoted).
    """
    from mer_keras.factory import create_model

    try:
        return create_model(opts.model, len(data.classes), input_shape=rep.input_shape,
                            **({"variant": opts.variant} if opts.variant else {}))
    except ValueError as exc:
        if not opts.input_size:
            raise
        first = str(exc).strip().splitlines()[0][:300]
        raise OptionError(f"--input-size {opts.input_size}: {opts.model} cannot take inputs of shape "
                          f"{rep.input_shape} ({first}); its registered input is "
                          f"{opts.spec.input_shape}") from None


def check_transfer(opts: TrainOptions, rep: RepresentationConfig, data: Dataset, console) -> None:
    """Step *check transfer*: the ``--init-from`` source must not hold the test subjects, and its
    layers must match (checked on the model before any fold)."""
    from mer_keras.train.transfer import initialise_from

    check_init_source(opts.init_from, data.name, opts.protocol, console)
    probe = probe_model(opts, rep, data)
    report = initialise_from(probe, opts.init_from, opts.freeze_until)  # fails early, before any fold
    console.print(f"--init-from {opts.init_from}: {len(report['copied'])} layers copied, "
                  f"{len(report['skipped'])} left at their initialisation "
                  f"({', '.join(report['skipped'][:6])}{', ...' if len(report['skipped']) > 6 else ''}), "
                  f"{report['frozen']} frozen", soft_wrap=True)
