"""The options of ``mer-keras train``: one dataclass, the job's schema.

Every option, its default and its help are written here once (:func:`mer_keras.jobs.schema.option`);
the command line (:mod:`mer_keras.cli.train`), ``config.json`` and the Python API all read them.
Defaults that belong to a library are taken from it: training (:class:`mer_keras.train.config.TrainConfig`),
the synthetic set (:class:`mer_keras.data.synthetic.config.SyntheticConfig`), and per model the
registry (learning rate, representation: ``None`` here).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mer_keras import names
from mer_keras.data.synthetic.config import CAPTURES, MAX_CLIPS, MAX_SEED, MAX_SUBJECTS, SyntheticConfig
from mer_keras.errors import OptionError
from mer_keras.jobs.schema import from_config, option
from mer_keras.preprocess.normalise import INPUT_NORMS
from mer_keras.train.config import (
    MAX_BATCH_SIZE,
    MAX_EPOCHS,
    MAX_PARALLEL_FOLDS,
    MAX_SHIFT,
    SAMPLINGS,
    TrainConfig,
)

#: The training library's defaults (epochs, batch, seed, ...) and the synthetic set's (subjects,
#: clips): the options below take them from there.
_TRAINING = TrainConfig()
_SYNTHETIC = SyntheticConfig()

#: Upper bounds of the options not bounded by a library (training's are :mod:`mer_keras.train.config`'s,
#: the synthetic set's :mod:`mer_keras.data.synthetic.config`'s): beyond them a value is a typo that
#: would exhaust memory or processes (a 100000 px input, a thousand preprocessing processes)
#: before failing.
MAX_INPUT_SIZE = 1_024
MAX_WORKERS = 256
MAX_REPLICAS = 64


def parse_folds(value: str | None) -> list[str] | None:
    """``--folds sub01,sub02`` -> ["sub01", "sub02"] (None: every fold)."""
    return [f.strip() for f in value.split(",")] if value else None


def parse_aux_weights(items: Sequence[str] | None) -> dict | None:
    """``--aux-weight proposal=0.5`` (repeatable) -> {"proposal": 0.5}.

    Raises:
        OptionError: an item that is not OUTPUT=WEIGHT with a number.
    """
    weights = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        try:
            weights[key.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not key.strip():
            raise OptionError(f"--aux-weight {item!r}: expected OUTPUT=WEIGHT, e.g. proposal=0.5")
    return weights or None


def check_aux_weights(weights) -> str | None:
    """What is wrong with loss weights {output: weight} (None: nothing): each a finite number >= 0."""
    if not isinstance(weights, dict):
        return "expected OUTPUT=WEIGHT pairs"
    for key, w in weights.items():
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
            return f"the weight of {key!r} is {w!r}; expected a finite number >= 0"
    return None


@dataclass
class TrainOptions:
    """Every option of ``mer-keras train`` (recorded as ``config.json``).

    Defaults live here, except the per-model ones (learning rate, representation), which the
    model registry holds (``None`` here means "the model's").
    """

    model: str = option(_TRAINING.model, "Architecture from the registry.", choices=lambda: names.offered("models"))
    data: str = option("synthetic", "Dataset: the embedded synthetic set, a database, the MEGC2019 composite (root "
                       "holds CASME2/, SAMM/, SMIC/) or a manifest CSV.", choices=lambda: names.offered("datasets"))
    root: str | None = option(None, "Database folder (or manifest CSV); default $MER_DATA_ROOT/<DB>.")
    strict: bool = option(False, "Stop at the first bad clip instead of skipping it.")
    protocol: str = option("loso", "loso; composite (LOSO on --data composite, per-database metrics too); cross "
                           "(train on --data, test on --test-data).", choices=lambda: names.PROTOCOLS)
    test_data: str | None = option(None, "Test database of --protocol cross.")
    test_root: str | None = option(None, "Root of the test database.")
    apex: str = option("midpoint", "Where the sheet gives no apex: midpoint of onset..offset, or spot (frame of "
                       "largest motion against onset).", choices=lambda: names.APEX_POLICIES)
    workers: int = option(1, "Processes for preprocessing clips not yet cached.", min=1, max=MAX_WORKERS)
    representation: str | None = option(None, "Input representation; default: the model's own (LEARNet: "
                                        "dynamic_image).", choices=lambda: names.REPRESENTATIONS)
    input_size: int | None = option(None, "Side of the input image in pixels (default: the model's, see `mer-keras "
                                    "models`), for a model whose layers fix no size: e.g. micro_attention at 28 on "
                                    "the 28 px composite flow images. Models that fix it refuse other sizes.", min=8,
                                    max=MAX_INPUT_SIZE)
    variant: str | None = option(None, "Architecture variant: learnet paper|released, htnet paper|small, "
                                 "feature_refinement one_stream|paper (see `mer-keras models`).")
    recipe: str | None = option(None, "Training recipe: project (the defaults) or paper (the paper's or official "
                                "code's lr, epochs, batch size, flips, class weighting and variant, where the model "
                                "has one; see `mer-keras models`). Options given explicitly override it.")
    epochs: int | None = option(None, f"Fixed epochs per fold (no early stopping on test data); default: "
                                f"{_TRAINING.epochs}, or the recipe's.", min=1, max=MAX_EPOCHS)
    batch_size: int | None = option(None, f"Global batch size; default: {_TRAINING.batch_size}, or the recipe's.",
                                    min=1, max=MAX_BATCH_SIZE)
    lr: float | None = option(None, "Adam learning rate (default: the model's, see `mer-keras models`).", above=0.0)
    seed: int = option(_TRAINING.seed, "Seed of the synthetic data and of training.", min=0, max=MAX_SEED)
    out: str = option("runs", "Parent folder of the run folder.")
    subjects: int = option(_SYNTHETIC.subjects, "Synthetic pseudo-subjects.", min=2, max=MAX_SUBJECTS)
    clips: int = option(_SYNTHETIC.clips_per_subject, "Synthetic clips per subject.", min=1, max=MAX_CLIPS)
    faces: str | None = option(None, "Folder of extra face photos for the synthetic set.")
    synthetic_expression: str = option("micro", "Synthetic clips of micro-expressions, or macro-expressions (the "
                                       "same AUs, about 4x larger and longer) for pretraining "
                                       "(--folds none; then --init-from).", choices=lambda: names.EXPRESSIONS)
    synthetic_capture: str = option("single", "How the synthetic pseudo-subjects are filmed: single (all at 100 fps "
                                    "in colour) or databases (each as CASME II, SAMM or SMIC-HS in turn: 200 fps "
                                    "colour, 200 fps grayscale, 100 fps colour).", choices=lambda: CAPTURES)
    folds: list[str] | None = option(None, "Comma-separated LOSO test subjects to run (default: all); `none`: no "
                                     "fold, only the final model. Pool runs with `mer-keras merge`.",
                                     cli_type=str, parse=parse_folds)
    export: bool = option(True, "Write TFLite fp32 and int8 models.", secondary="--no-export")
    strategy: str = option("auto", "tf.distribute strategy.", choices=lambda: names.STRATEGIES)
    augment: bool | None = option(None, "Random horizontal flips; default: on, or the recipe's.",
                                  secondary="--no-augment")
    shift: int | None = option(None, "Random translations of training images by up to this many pixels "
                               f"(edges repeated); 0: none; default: {_TRAINING.shift}, or the recipe's.", min=0,
                               max=MAX_SHIFT)
    class_weight: bool | None = option(None, "Balanced class weights from the training folds; default: on, or the "
                                       "recipe's.", secondary="--no-class-weight")
    weight_decay: float | None = option(None, "Decoupled weight decay of Adam (AdamW): every step w -= lr * "
                                        "weight_decay * w; default: 0 (none).", min=0.0, max=1e3)
    ema: float | None = option(None, "Keep a moving average of the weights with this momentum (e.g. 0.99) and "
                               "end every fit with it instead of the last step's weights; default: 0 (off).",
                               min=0.0, max=0.9999)
    label_smoothing: float | None = option(None, "Label smoothing of the classification loss: targets (1 - s) * "
                                           "one-hot + s / K; default: 0 (none).", min=0.0, max=0.99)
    mixup: bool | None = option(None, "Mixup: every training sample mixed with another of its batch, inputs and "
                                "targets, by a weight uniform in [0, 1); default: off.", secondary="--no-mixup")
    cutmix: bool | None = option(None, "Cut-mix: every training sample takes a box of another sample of its batch, "
                                 "its targets mixed by the area kept; default: off.", secondary="--no-cutmix")
    sampling: str | None = option(None, "How an epoch's training samples are chosen: shuffle (each once) or "
                                  "balanced (class by class, with replacement; class weights then default to "
                                  "off); default: shuffle.", choices=lambda: SAMPLINGS)
    input_norm: str | None = option(None, "Input normalisation: none, or database (each database's channels moved "
                                    "to the mean and spread of all the run's clips, from the images alone; "
                                    "evaluation only: such a model is not exported); default: none.",
                                    choices=lambda: INPUT_NORMS)
    flow_method: str = option("tvl1", "Optical flow method (flow representation).", choices=lambda: names.FLOW_METHODS)
    flow_encoding: str | None = option(None, "How flow becomes 0..255: fixed (one scale for every clip) or minmax "
                                       "(each channel of each image stretched, as published flow sets are); default: "
                                       "fixed, and minmax for --data megc2019-flow.",
                                       choices=lambda: names.FLOW_ENCODINGS)
    dynamic_image: str | None = option(None, "Rank-pooling weighting of a dynamic image: bilen (Bilen et al. 2016, "
                                       "Eq. 4) or authors (LEARNet's released code: weights summing to T, an "
                                       "appearance image with the motion on top); default: bilen.",
                                       choices=lambda: names.DI_WEIGHTINGS)
    cache_dir: str | None = option(None, "Cache folder (default $MER_CACHE_DIR or ~/.cache/mer_keras).")
    aux_weights: dict | None = option(None, "Loss weight of an auxiliary output, OUTPUT=WEIGHT (repeatable), e.g. "
                                      "proposal=0.5, au=1, au_cluster=0.05.", flag="--aux-weight",
                                      cli_type=list[str], parse=parse_aux_weights, check=check_aux_weights)
    init_from: str | None = option(None, "Run folder, .keras file, released weights (.h5 or its folder), or a "
                                   "preset's name (e.g. micro_attention_synthetic_macro) whose weights start "
                                   "training (layers matched by name and shape).")
    freeze_until: str | None = option(None, "With --init-from: freeze this layer and every layer before it.")
    resume: str | None = option(None, "Continue an interrupted run folder: its recorded options, finished folds "
                                "kept, the fold in progress continued from its last finished epoch.")
    config: str | None = option(None, "Run again with a recorded run's options: its folder or config.json; options "
                                "given beside it replace the recorded ones (e.g. --seed 1). A new run folder.")
    cpu_replicas: int = option(1, "Split the CPU into N logical devices (with --strategy mirrored: N replicas "
                               "without a GPU).", min=1, max=MAX_REPLICAS)
    deterministic: bool = option(_TRAINING.deterministic, "TensorFlow op determinism and seeded dropout: "
                                 "the same --seed gives the "
                                 "same metrics (on GPU some ops are slower or have no deterministic kernel).",
                                 secondary="--no-deterministic")
    mixed_precision: bool = option(_TRAINING.mixed_precision, "Train under mixed_float16 "
                                   "(a GPU speed-up; outputs stay float32, saved "
                                   "and exported models are float32).")
    parallel_folds: int = option(_TRAINING.parallel_folds, "Folds trained at once by one program, each "
                                 "layer computing all of them in one op (each fold its own batches, loss and Adam "
                                 "state); 0: chosen from the model's FLOPs and the memory (all folds of equal "
                                 "steps per epoch for models under 20 MFLOPs per sample: STSTNet, OFF-ApexNet, "
                                 "Feature Refinement); "
                                 "1: one at a time.", min=0,
                                 max=MAX_PARALLEL_FOLDS)
    final: bool | None = option(None, "Fit the final model on all subjects (default: only when every fold runs).",
                                secondary="--no-final")
    tensorboard: bool = option(False, "Write TensorBoard logs of each fold to RUN/tensorboard/ "
                                      "(`tensorboard --logdir RUN/tensorboard`). Per-epoch CSVs (RUN/history/) and "
                                      "learning curves are always written.")
    backup_minutes: float = option(_TRAINING.backup_minutes, "Back up the fold in progress "
                                   "(weights, optimizer, epoch) when this many "
                                   "minutes have passed since the last backup, at the end of an epoch; 0: every "
                                   "epoch. --resume continues from it.", min=0.0)

    @property
    def spec(self):
        """The model's registry row (:class:`mer_keras.registry.ModelSpec`).

        Raises:
            UnknownNameError: ``model`` is not registered (the message lists the registered ones).
        """
        from mer_keras.factory import get_spec

        return get_spec(self.model)

    @property
    def wants_final(self) -> bool:
        """Whether the run fits the final model: ``final``; by default when it runs every fold, or no
        fold (``--folds none``), not when it runs some of them."""
        if self.final is not None:
            return self.final
        return not self.folds or list(self.folds) == ["none"]


#: Options that are paths a run reads from (or caches into) and that may be given relative to the
#: working folder: recorded absolute, so that a run's folder can be used from anywhere.
PATH_OPTIONS = ("root", "test_root", "faces", "cache_dir")


def absolute_paths(config: dict, base: str | os.PathLike | None) -> dict:
    """``config`` with the relative paths of :data:`PATH_OPTIONS` made absolute against ``base``
    (the working folder they were given in); ``base`` None: as they are."""
    if base is None:
        return config
    out = dict(config)
    for key in PATH_OPTIONS:
        value = out.get(key)
        if isinstance(value, str) and value and not os.path.isabs(value):
            out[key] = os.path.normpath(os.path.join(os.fspath(base), value))
    return out


def recorded_working_folder(config: dict, run_folder: str | os.PathLike) -> str | None:
    """The working folder a run was made in: recorded as ``cwd`` since 2026-12-07; for an older run,
    inferred from where its folder is and the ``--out`` it recorded (``runs`` and a folder
    ``/home/u/runs/<run>`` give ``/home/u``); None when neither tells."""
    if isinstance(config.get("cwd"), str):
        return config["cwd"]
    out = config.get("out")
    if not isinstance(out, str) or not out:
        return None
    parent = Path(os.path.abspath(run_folder)).parent
    if os.path.isabs(out):
        return None  # an absolute --out says nothing about the working folder
    parts = Path(os.path.normpath(out)).parts
    if parts and tuple(parent.parts[-len(parts):]) == parts:
        return str(Path(*parent.parts[:-len(parts)]))
    return None


def options_from_config(config: dict, source: str | os.PathLike = "config.json", **overrides) -> TrainOptions:
    """:class:`TrainOptions` from a run's config.json (keys that are not options are ignored),
    validated: a bad recorded value is refused naming ``source`` and its key.

    A run recorded before the synthetic set was a named dataset has ``data: null``: it is ``synthetic``.
    Relative paths it recorded (runs made before paths were recorded absolute) are read against
    the working folder it was made in (:func:`recorded_working_folder`).

    Raises:
        OptionError: a recorded value of the wrong type or out of range (``"lr": "nan"``).
    """
    if isinstance(config, dict) and "data" in config and not config["data"]:
        config = {**config, "data": "synthetic"}
    if isinstance(config, dict) and os.fspath(source) != "config.json":  # relative paths of the run's working folder
        config = absolute_paths(config, recorded_working_folder(config, Path(os.fspath(source)).parent))
    return from_config(TrainOptions, config, source, **overrides)
