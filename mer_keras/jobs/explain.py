"""``mer-keras explain``: the Grad-CAM response map of one sample of a run's data, as a PNG.

The Grad-CAM computation itself is the library's (:mod:`mer_keras.explain`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mer_keras import atomic
from mer_keras.errors import MissingFileError, ModelFileError, OptionError, UnknownNameError
from mer_keras.jobs.schema import option, validate


def find_sample(rows: list[dict], sample_id: str) -> int:
    """The index of the record (a clip, or a ready input image) named ``sample_id``, as
    predictions.csv names it: ``subject/clip``, ``database/subject/clip`` or the clip alone.

    Args:
        rows: the run data's records (:attr:`mer_keras.data.records.Dataset.rows`: subject, clip,
            database, label), clips first then ready images, in input order.
    Raises:
        UnknownNameError: no record matches, or a bare clip name matches several (the message gives
            real examples of the run's names).
    """
    def names(r):
        return (f"{r['database']}/{r['subject']}/{r['clip']}", f"{r['subject']}/{r['clip']}")

    def bare(clip: str) -> str:  # a ready image's file name without its suffix and the published space
        clip = clip.strip()
        return clip[:-len(Path(clip).suffix)].strip() if Path(clip).suffix.lower() in (".png", ".jpg") else clip

    wanted = sample_id.strip()
    hits = [i for i, r in enumerate(rows) if wanted in names(r)]
    if not hits:
        hits = [i for i, r in enumerate(rows) if wanted in (r["clip"], bare(r["clip"]))
                or wanted == f"{r['subject']}/{bare(r['clip'])}"]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise UnknownNameError(f"sample {sample_id!r} is ambiguous: {', '.join(names(rows[i])[0] for i in hits[:5])}; "
                               "give subject/clip")
    examples = ", ".join(repr(names(r)[1]) for r in rows[:3])
    raise UnknownNameError(f"no sample {sample_id!r} in this run's data ({len(rows)} records, e.g. {examples}; "
                           "the subject and clip columns of predictions.csv, joined by '/')")


#: Suffixes of the figure ``--out`` may name (matplotlib writes the format its suffix names).
FIGURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".pdf", ".svg")


def check_png(out: str | Path) -> None:
    """Refuse a figure path that is a folder, cannot be written, or does not end in an image suffix
    (:data:`FIGURE_SUFFIXES`: anything else, e.g. a run's results.json, would be replaced by a picture).

    Raises:
        OptionError: naming ``out`` and what was expected.
    """
    from mer_keras.jobs.outputs import check_writable

    check_writable(out, "--out", file=True)
    if Path(out).suffix.lower() not in FIGURE_SUFFIXES:
        raise OptionError(f"--out {out}: expected a .png file path (or {', '.join(FIGURE_SUFFIXES[1:])})")


@dataclass
class ExplainOptions:
    """Options of ``mer-keras explain``."""

    run: str = option(help="Run folder written by mer-keras train.", argument=True)
    sample: str = option(help="Sample to explain, as predictions.csv names it: subject/clip (e.g. sub01/clip003) "
                                "or the clip alone.")
    layer: str | None = option(None, "Layer to explain (default: the last spatial layer).")
    class_name: str | None = option(None, "Class to explain (default: the prediction).", flag="--class")
    out: str | None = option(None, "PNG path (default RUN/explain/<subject>_<clip>.png).")
    allow_modified: bool = option(False, "Explain a model.keras whose sha256 differs from the one metadata.json "
                                         "records (changed since it was saved), with a warning; default: refuse it.")


def explain(opts: ExplainOptions, console=None) -> Path:
    """Write the Grad-CAM PNG of one sample of a run's data.

    Args:
        opts: the run folder (config.json, metadata.json, model.keras); the sample (see
            :func:`find_sample`); the layer to explain (default
            :func:`mer_keras.explain.default_layer`); the class to explain (default: the predicted
            one); the PNG path (default ``RUN/explain/<subject>_<clip>.png``).
    Returns:
        The PNG path. The figure shows the input, the map over it, and the class probabilities.
    Raises:
        ModelFileError, MissingFileError: missing run files, or a model.keras that is not what the
        run's metadata.json records (sha256, unless ``allow_modified``; outputs against classes).
        UnknownNameError: unknown sample, class or layer.
    """
    from rich.console import Console

    from mer_keras.data.pipeline import RepresentationConfig, build_inputs, image_inputs
    from mer_keras.explain import check_layer, default_layer, display_image, grad_cam
    from mer_keras.factory import get_spec
    from mer_keras.jobs.inputs import DataRequest, load_data
    from mer_keras.jobs.outputs import check_writable, not_a_folder
    from mer_keras.jobs.train_options import options_from_config
    from mer_keras.models.io import load_model, read_json
    from mer_keras.preprocess.cache import default_cache_dir

    validate(opts)
    console = console or Console()
    from mer_keras.presets import resolve

    run, sample_id, layer, class_name, out = resolve(opts.run), opts.sample, opts.layer, opts.class_name, opts.out
    if not run.is_dir():
        raise MissingFileError(f"{run}: {not_a_folder(run)}; expected a run folder "
                               "written by mer-keras train")
    config = read_json(run / "config.json")  # ModelFileError: missing, empty, not JSON, not an object
    try:
        classes = list(config["classes"])
        train_opts = options_from_config(config, run / "config.json")
        rep = RepresentationConfig.from_dict(config["representation_config"])
        explain_layer = get_spec(config["model"]).explain_layer
    except OptionError:
        raise  # a recorded option of the wrong type or out of range, named with its file and key
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{run / 'config.json'}: missing or invalid field ({type(exc).__name__}: {exc})") from None
    if out is not None:
        check_png(out)
    from mer_keras.jobs.trained import console_warning

    model = load_model(run, opts.allow_modified, warn=console_warning(console))  # checked against metadata.json
    if layer is not None:
        check_layer(model, layer)
    layer = layer or default_layer(model, explain_layer)
    if class_name is not None and class_name not in classes:
        raise UnknownNameError(f"unknown class {class_name!r}; the run's classes are {classes}")
    if out is None:
        check_writable(run / "explain", "RUN/explain")
    default_cache_dir(train_opts.cache_dir)  # every check before the data is loaded
    data = load_data(DataRequest.of(train_opts), console)
    rows = data.rows
    index = find_sample(rows, sample_id)
    row = rows[index]
    if index < len(data.samples):  # a clip: preprocessed as training preprocessed it (through the cache)
        x = build_inputs([data.samples[index]], rep, cache_dir=default_cache_dir(train_opts.cache_dir))[0]
    else:  # a ready input image (e.g. the published composite flow images)
        x = image_inputs([data.images[index - len(data.samples)].path], rep.size, rep.channels, rep.regions)[0]
    name = f"{row['subject']}/{row['clip']}"
    cam, probs = grad_cam(model, x, layer, classes.index(class_name) if class_name else None)
    shown = classes.index(class_name) if class_name else int(probs.argmax())
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{row['subject']}_{row['clip'].strip()}")
    path = Path(out) if out else run / "explain" / f"{safe.removesuffix('.png')}.png"
    draw_figure(path, display_image(x, rep.representation), cam, probs, shown, classes,
                title=f"{rep.representation}\n{name} ({row['label']})", layer=layer)
    console.print(f"{name}: predicted {classes[int(probs.argmax())]} "
                  f"({probs.max():.2f}), label {row['label']}; Grad-CAM of layer {layer}", soft_wrap=True)
    return path


def draw_figure(path: Path, image, cam, probs, shown: int, classes: list[str], title: str, layer: str) -> None:
    """The explain figure, written atomically as a PNG: the input, the Grad-CAM map over it and the
    class probabilities (the explained class in red).

    Args:
        image: (H, W, 3) uint8 display image of the input. cam: (h, w) float map in [0, 1], resized
            to the image. probs: (K,) probabilities. shown: index of the explained class.
    """
    import matplotlib

    matplotlib.use("Agg")
    import cv2
    import matplotlib.pyplot as plt

    heat = cv2.resize(cam, image.shape[1::-1], interpolation=cv2.INTER_LINEAR)
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.4), gridspec_kw={"width_ratios": [1, 1, 0.9]})
    axes[0].imshow(image)
    axes[0].set_title(title, fontsize=9)
    axes[1].imshow(image.mean(-1), cmap="gray")
    axes[1].imshow(heat, cmap="jet", alpha=0.45, vmin=0, vmax=1)
    axes[1].set_title(f"Grad-CAM of '{classes[shown]}'\nlayer {layer} {cam.shape}", fontsize=9)
    for ax in axes[:2]:
        ax.axis("off")
    axes[2].barh(classes, probs, color=["tab:red" if k == shown else "tab:gray" for k in range(len(classes))])
    axes[2].set_xlim(0, 1)
    axes[2].set_title("probabilities", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
