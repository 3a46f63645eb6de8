"""``mer-keras evaluate``: re-score a saved model (Keras and every TFLite export) on new clips.

Steps: check the model files -> build the evaluation set -> score each model -> compare the
exports with float32 -> write ``results.json``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mer_keras.data.composite import parse_class_map
from mer_keras.errors import ModelFileError
from mer_keras.jobs.outputs import check_outputs
from mer_keras.jobs.schema import option
from mer_keras.jobs.trained import check_model_files, find_models

if TYPE_CHECKING:  # the options are read by `mer-keras --help`, which must not load numpy, OpenCV or TensorFlow

    from mer_keras.preprocess.representation import RepresentationConfig


@dataclass
class EvalOptions:
    """Options of ``mer-keras evaluate``.

    The synthetic evaluation set's seed defaults to the run's seed + 1: new pseudo-subjects and
    clips never seen in training.
    """

    target: str = option(help="Run folder, a .keras/.tflite file with metadata.json beside it, or a preset's name "
                              "(`mer-keras models --presets`).", argument=True)
    seed: int | None = option(None, "Seed of the synthetic evaluation set (default: run seed + 1).")
    subjects: int = option(6, "Pseudo-subjects in the evaluation set.", min=2)
    clips: int = option(10, "Clips per subject.", min=1)
    out: str | None = option(None, "Output folder (default runs/eval-<time>-<model folder>: the model's own folder is "
                                   "left as it is).")
    cache_dir: str | None = option(None, "Cache folder.")
    data: str | None = option(None, "Score a dataset (a name of `mer-keras train --data`, e.g. casme2 or "
                                    "megc2019-flow); `synthetic`: new synthetic clips, the held-out check of a "
                                    "synthetic run (the default for models trained on the synthetic set; a model "
                                    "trained on a database needs --data).")
    root: str | None = option(None, "The dataset's folder (or manifest CSV).")
    strict: bool = option(False, "Stop at the first bad clip of --data instead of skipping it.")
    class_map: dict | str | None = option(None, "Map --data labels to the model's classes: composite (each "
                                                "database's emotions as the MEGC2019 composite maps them), or FROM=TO "
                                                "(repeatable; FROM= leaves a label out). Labels outside the classes "
                                                "are otherwise an error.", cli_type=list[str], parse=parse_class_map)
    allow_modified: bool = option(False, "Score a model file whose sha256 differs from the one metadata.json records "
                                         "(changed since it was exported), with a warning; default: refuse it.")


def evaluate(opts: EvalOptions, console) -> Path:
    """Score every model of the target on a synthetic evaluation set; write results.json.

    Returns:
        The evaluation folder (``runs/eval-<timestamp>-<model folder>`` unless ``opts.out``).
    Raises:
        ModelFileError, MissingFileError: an unusable model file or metadata.json (named): every file
            is checked against metadata.json (sha256, outputs against classes) before any work.
    """
    from mer_keras import atomic
    from mer_keras.data.datasets import dataset_spec
    from mer_keras.jobs.schema import validate
    from mer_keras.jobs.trained import console_warning
    from mer_keras.preprocess.cache import default_cache_dir

    validate(opts)
    model_warnings: list[str] = []

    def warn(message: str) -> None:
        model_warnings.append(message)
        console_warning(console)(message)

    from dataclasses import replace

    from mer_keras.presets import resolve

    opts = replace(opts, target=str(resolve(opts.target)))  # a preset's name is its folder
    models = check_model_files(opts.target, opts.allow_modified, warn)  # before the evaluation set is built
    folder, files = find_models(Path(opts.target))
    meta, classes, rep, config, seed = read_model_folder(opts, folder)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(opts.out) if opts.out else Path("runs") / f"eval-{stamp}-{folder.resolve().name}"
    check_outputs(out, opts.cache_dir)  # before any work
    if (out / "config.json").is_file() or (out / "metadata.json").is_file():
        from mer_keras.errors import OptionError

        raise OptionError(f"--out {out}: a run or model folder; the evaluation's results.json and confusion_matrix.png "
                          "would replace its own: give a new folder")
    cache = default_cache_dir(opts.cache_dir)
    left_out = {}
    generated = opts.data is None or dataset_spec(opts.data).generated
    if opts.class_map and generated:
        from mer_keras.errors import OptionError

        raise OptionError("--class-map applies to --data (a database); the synthetic clips are in the run's classes")
    if not generated:
        x, y, n, dataset, left_out = dataset_inputs(opts, rep, classes, meta, cache, console)
    else:
        x, y, n, dataset = synthetic_inputs(opts, rep, classes, seed, config.get("faces"), cache, console)
    from mer_keras.environment import differences, environment_record

    env_warnings = differences({str(folder): config.get("environment") if config else None,
                                "this machine": environment_record()}) if config.get("environment") else []
    from mer_keras.jobs.report import print_warnings

    print_warnings(env_warnings, console)  # the figures below are computed here, the run's were computed there
    scores, probs = score_models(models, files, x, y, classes, console)
    parity = parity_checks(probs, y, classes, console)
    out.mkdir(parents=True, exist_ok=True)
    from mer_keras.metrics import plot_confusion_matrix

    reference = next(iter(scores))  # model.keras when present, else the first TFLite file
    plot_confusion_matrix(scores[reference]["confusion_matrix"], classes, out / "confusion_matrix.png",
                          title=f"{reference} on {dataset} ({n} clips)")
    atomic.write_json(out / "results.json", {"target": str(opts.target), "dataset": dataset,
                                             "seed": seed if generated else None, "n_samples": n, "classes": classes,
                                             "class_map": opts.class_map, "left_out": left_out,
                                             "models": scores, "parity": parity,
                                             "warnings": model_warnings + env_warnings})
    return out


def read_model_folder(opts: EvalOptions, folder: Path):
    """Step *read the model's folder*: its metadata.json (classes, preprocessing) and, for a run,
    config.json; the evaluation seed (the run's + 1 unless given).

    Returns:
        (metadata, classes, :class:`~mer_keras.preprocess.representation.RepresentationConfig`,
        config (empty without config.json), seed).
    Raises:
        ModelFileError: metadata.json lacks a field or has a bad one. OptionError: a model trained on
            real data and no ``--data`` (new synthetic clips would say nothing about it).
    """
    from mer_keras.data.datasets import find_dataset
    from mer_keras.data.pipeline import RepresentationConfig
    from mer_keras.models.io import read_json

    meta = read_json(folder / "metadata.json")
    try:
        classes = list(meta["classes"])
        rep = RepresentationConfig.from_dict(meta["preprocessing"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{folder / 'metadata.json'}: missing or invalid field ({exc})") from None
    config = read_json(folder / "config.json") if (folder / "config.json").exists() else {}
    seed = opts.seed if opts.seed is not None else int(config.get("seed", 0)) + 1
    trained_on = meta.get("dataset")
    trained_spec = find_dataset(trained_on)
    if opts.data is None and trained_on is not None and not (trained_spec and trained_spec.generated):
        from mer_keras.errors import OptionError

        raise OptionError(f"{opts.target}: trained on {trained_on}; new synthetic clips would say nothing about it: "
                          f"give --data (e.g. --data {trained_on} --root DIR), or --data synthetic to score it on "
                          "synthetic clips anyway")
    return meta, classes, rep, config, seed


def dataset_inputs(opts: EvalOptions, rep: RepresentationConfig, classes: list[str], meta: dict, cache, console):
    """The inputs of ``--data`` prepared as the model's metadata says, with labels in its classes.

    Returns:
        (x (N, ...) float32, y (N,) int, N, dataset name, {label: clips left out by the class map}).
    Raises:
        OptionError: labels that are not classes of the model and not mapped (named; nothing is
            dropped silently).
    """
    import numpy as np

    from mer_keras.data.composite import apply_class_map
    from mer_keras.jobs.inputs import build_dataset_inputs, load_data_for_model

    ds = load_data_for_model(opts.data, opts.root, opts.strict, meta.get("apex_policy") or "midpoint", opts.cache_dir,
                             meta, console, subjects=opts.subjects, clips=opts.clips, seed=opts.seed or 0)
    ds, left_out = apply_class_map(ds, classes, opts.class_map, f"--data {opts.data}")
    if left_out:
        console.print(f"--class-map {opts.class_map if isinstance(opts.class_map, str) else 'FROM=TO'}: left out "
                      + ", ".join(f"{n} clip(s) labelled {k}" for k, n in sorted(left_out.items())), soft_wrap=True)
    inputs = build_dataset_inputs(ds, rep, console, cache_dir=cache, strict=opts.strict)
    y = np.array([classes.index(r["label"]) for r in ds.rows])
    return inputs.x, y, len(y), ds.name, left_out


def synthetic_inputs(opts: EvalOptions, rep: RepresentationConfig, classes: list[str], seed: int, faces, cache,
                     console):
    """New synthetic clips (``seed``: the run's seed + 1 unless given) prepared as the model's metadata says.

    Returns:
        (x (N, ...) float32, y (N,) int, N, dataset name).
    """
    import numpy as np

    from mer_keras.data.datasets import load_synthetic
    from mer_keras.data.pipeline import build_inputs
    from mer_keras.data.synthetic import SyntheticConfig

    ds = load_synthetic(SyntheticConfig(subjects=opts.subjects, clips_per_subject=opts.clips, seed=seed),
                        faces=faces, cache_dir=cache)
    console.print(f"evaluation set: {len(ds.samples)} synthetic clips (seed {seed}) at {ds.root}", soft_wrap=True)
    x = build_inputs(ds.samples, rep, cache_dir=cache)
    return x, np.array([classes.index(s.label) for s in ds.samples]), len(ds.samples), ds.name


def score_models(models: dict, files, x, y, classes: list[str], console) -> tuple[dict, dict]:
    """Step *score*: every model file's accuracy, UF1, UAR and per-class F1 on ``x`` (printed).

    Returns:
        ({file name: metrics with ``seconds``}, {file name: (N, K) probabilities}).
    """
    from mer_keras.metrics import compute_metrics

    scores, probs = {}, {}
    for name in files:
        t0 = time.perf_counter()
        probs[name] = models[name].predict(x)
        m = compute_metrics(y, probs[name].argmax(1), classes)
        scores[name] = m | {"seconds": round(time.perf_counter() - t0, 2)}
        console.print(f"{name:<22} accuracy {m['accuracy']:.3f}  UF1 {m['uf1']:.3f}  UAR {m['uar']:.3f}  per class F1 "
                      + "  ".join(f"{c} {v['f1']:.2f}" for c, v in m["per_class"].items()), soft_wrap=True)
    return scores, probs


def parity_checks(probs: dict, y, classes: list[str], console) -> dict:
    """Step *parity*: the float32 TFLite file against Keras, every other TFLite file against float32 (printed).

    Returns:
        {"fp32_vs_keras": ..., "<quant>_vs_fp32": ...} of :func:`mer_keras.export.verify.compare_outputs`.
    """
    from mer_keras.export.verify import compare_outputs

    parity = {}
    if "model.keras" in probs and "model_fp32.tflite" in probs:
        parity["fp32_vs_keras"] = compare_outputs(probs["model.keras"], probs["model_fp32.tflite"])
        console.print(f"TFLite fp32 vs Keras: max |diff| {parity['fp32_vs_keras']['max_abs_diff']:.2e}")
    for name in probs:
        if name.endswith(".tflite") and name != "model_fp32.tflite" and "model_fp32.tflite" in probs:
            key = name.removeprefix("model_").removesuffix(".tflite") + "_vs_fp32"  # int8_vs_fp32, fp16_vs_fp32, ...
            parity[key] = p = compare_outputs(probs["model_fp32.tflite"], probs[name], y, classes)
            console.print(f"TFLite {key.removesuffix('_vs_fp32')} vs fp32: "
                          f"argmax agreement {p['argmax_agreement']:.3f}, "
                          f"UF1 {p['uf1_candidate']:.3f} vs {p['uf1_reference']:.3f}")
    return parity
