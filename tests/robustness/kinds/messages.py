"""Messages that must say what is wrong: a file of the wrong kind, JSON of the wrong shape, a name
that does not fit, each reported in one line that names the file (or option) and what was expected.

Files, under ``messages/``: ``book.xlsx`` (an Excel workbook given where a CSV manifest is read) and
``book_as.csv`` (the same bytes named .csv); ``blank_first/`` (a CASME II tree whose workbook's
first sheet is blank, the coding on its second); run folders whose ``metadata.json`` holds a JSON
list (``list_meta_run``), is empty (``empty_meta_run``) or is a folder (``folder_meta_run``), whose
``config.json`` is a list (``list_config_run``) or empty (``empty_config_run``); TFLite folders with a
list or an empty ``metadata.json``; ``list_config.keras`` (a Keras archive whose config.json is a
list); ``conv_run/`` (a run with a one-convolution model, to explain); ``ensemble_*`` (runs whose
``results.json`` is a list or lacks its figures); ``spot_*`` (spotting folders whose per-video file is
a list or empty); ``manifest_folder/``, ``image_folder.png/``.
"""

from __future__ import annotations

import json
import shutil
import zipfile

from tests.helpers.cases import SHEET, Case, _call

KIND = "messages that must say what is wrong"

_CLASSES = ["negative", "positive", "surprise"]


def _run(corpus, folder, replace: dict | None = None) -> None:
    """A run folder: the corpus's model, metadata and config; ``replace`` (file name -> text, or None
    for a folder in its place) replaces some of them."""
    folder.mkdir(parents=True)
    shutil.copyfile(corpus / "models/good.keras", folder / "model.keras")
    shutil.copyfile(corpus / "models/metadata.json", folder / "metadata.json")
    shutil.copyfile(corpus / "runs/good/config.json", folder / "config.json")
    for name, text in (replace or {}).items():
        path = folder / name
        if text is None:
            path.unlink()
            path.mkdir()
        else:
            path.write_text(text)


def _fold_run(folder, results) -> None:
    """A finished run with one fold of two clips and ``results`` as its results.json."""
    (folder / "folds").mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model": "tiny", "dataset": "synthetic", "protocol": "loso",
                                                    "classes": _CLASSES, "loso_subjects": ["sub01"]}))
    (folder / "folds/sub01.json").write_text(json.dumps({
        "subject": "sub01", "classes": _CLASSES, "test_keys": ["synthetic/sub01/a", "synthetic/sub01/b"],
        "labels": ["negative", "surprise"], "probabilities": [[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]],
        "row": {"subject": "sub01", "n_test": 2, "accuracy": 1.0, "uf1": 1.0, "uar": 1.0}}))
    (folder / "results.json").write_text(json.dumps(results))


def _conv_model(path) -> None:
    """A classifier with one convolution (``conv``): the layer Grad-CAM can explain."""
    from mer_keras._keras import keras

    inp = keras.Input((28, 28, 3), name="input")
    x = keras.layers.Conv2D(2, 3, name="conv")(inp)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    keras.Model(inp, keras.layers.Dense(len(_CLASSES), activation="softmax", name="predictions")(x),
                name="tiny_conv").save(path)


def build(corpus) -> None:
    from openpyxl import Workbook

    from tests.helpers.corrupt import CASME2_HEADER, casme2_tree

    m = corpus / "messages"
    wb = Workbook()
    wb.active.append(["subject", "label", "frames"])
    wb.active.append(["s1", "negative", "clip"])
    wb.save(m / "book.xlsx")
    shutil.copyfile(m / "book.xlsx", m / "book_as.csv")
    casme2_tree(m / "blank_first", [])
    wb = Workbook()
    wb.active.title = "Notes"  # blank
    coding = wb.create_sheet("Coding")
    coding.append(CASME2_HEADER)
    coding.append([1, "EP_good", None, 1, 3, 6, None, "12", "happiness"])
    wb.save(m / "blank_first" / SHEET)

    meta_list = json.dumps([json.loads((corpus / "models/metadata.json").read_text())])
    _run(corpus, m / "list_meta_run", {"metadata.json": meta_list})
    _run(corpus, m / "empty_meta_run", {"metadata.json": ""})
    _run(corpus, m / "folder_meta_run", {"metadata.json": None})
    _run(corpus, m / "list_config_run", {"config.json": json.dumps([{"model": "ststnet"}])})
    _run(corpus, m / "empty_config_run", {"config.json": "\n"})
    for name, text in (("list_meta_tflite", meta_list), ("empty_meta_tflite", "")):
        (m / name).mkdir()
        shutil.copyfile(corpus / "models/good.tflite", m / name / "model.tflite")
        (m / name / "metadata.json").write_text(text)
    (m / "metadata_list.json").write_text(meta_list)
    with zipfile.ZipFile(corpus / "models/good.keras") as src, zipfile.ZipFile(m / "list_config.keras", "w") as dst:
        for member in src.namelist():
            dst.writestr(member, json.dumps([json.loads(src.read(member))]) if member == "config.json"
                         else src.read(member))
    _run(corpus, m / "conv_run")
    _conv_model(m / "conv_run/model.keras")  # in place of the corpus's model: one with a convolution
    (m / "conv_run/results.json").write_text('{"note": "the run\'s results"}\n')

    _fold_run(m / "ensemble_list_a", [{"overall": {"uf1": 0.5, "uar": 0.5}}])
    _fold_run(m / "ensemble_ok", {"model": "tiny", "overall": {"uf1": 0.5, "uar": 0.5}})
    _fold_run(m / "ensemble_no_figures", {"model": "tiny"})
    for name, text in (("spot_list", "[1, 2]"), ("spot_empty", "")):
        (m / name / "videos").mkdir(parents=True)
        (m / name / "videos/long_000.json").write_text(text)
    (m / "manifest_folder").mkdir()
    (m / "image_folder.png").mkdir()


def _unchanged(rel: str, text: str):
    def check(root, outcome) -> list[str]:
        path = root / rel
        return [] if path.is_file() and path.read_text() == text else [f"{path} was changed or removed"]
    return check


def cases() -> list[Case]:
    from mer_keras.errors import DataError, ModelFileError, UnknownNameError
    from mer_keras.runtime.metadata import MetadataError

    m = "{c}/messages"
    cache = ["--cache-dir", "{c}/cache"]
    list_object = "holds a JSON list; expected a JSON object"
    empty = "empty file; expected a JSON object"
    workbook = "an Excel workbook (.xlsx) or another zip file, not CSV text: save it as CSV"
    explain = ["explain", f"{m}/conv_run", "--sample", "sub01/clip001"]
    good_edge = ["--video", "{c}/videos/good.mp4"]
    return [
        # a workbook where a CSV is read, a workbook whose first sheet is blank
        Case(".xlsx workbook as the manifest to prepare", "cli",
             ["data", "prepare", "manifest", "--root", f"{m}/book.xlsx", *cache], 2, f"{m}/book.xlsx", workbook,
             kind=KIND),
        Case(".xlsx workbook as the manifest to train on", "cli",
             ["train", "--data", "manifest", "--root", f"{m}/book.xlsx", "--out", "{c}/train_out", *cache], 2,
             f"{m}/book.xlsx", workbook, kind=KIND),
        Case(".xlsx workbook as the manifest to evaluate on", "cli",
             ["evaluate", "{c}/runs/good", "--data", "manifest", "--root", f"{m}/book.xlsx", "--out",
              "{c}/eval_out", *cache], 2, f"{m}/book.xlsx", workbook, kind=KIND),
        Case("workbook named .csv as a coding sheet", "call",
             _call("mer_keras.data.sheets.read_sheet", lambda f, c: f(c / "messages/book_as.csv", ["Subject"])),
             DataError, f"{m}/book_as.csv", workbook, kind=KIND),
        Case("coding workbook whose first sheet is blank", "cli",
             ["data", "prepare", "casme2", "--root", f"{m}/blank_first", *cache], 2, f"{m}/blank_first/{SHEET}",
             "sheet 'Notes', the first of the workbook, is blank", kind=KIND),
        Case("coding workbook whose first sheet is blank, read directly", "call",
             _call("mer_keras.data.sheets.read_sheet",
                   lambda f, c: f(c / "messages/blank_first" / SHEET, ["Subject", "OnsetFrame"])),
             DataError, f"{m}/blank_first/{SHEET}", "move sheet 'Coding', which holds cells, first", kind=KIND),
        Case("text file named .xlsx as coding sheet, said to be text", "cli",
             ["data", "prepare", "casme2", "--root", "{c}/db/text_sheet", *cache], 2, f"{{c}}/db/text_sheet/{SHEET}",
             "a text file, not an Excel workbook", kind=KIND),
        Case("folder given as the manifest", "cli",
             ["data", "prepare", "manifest", "--root", f"{m}/manifest_folder", *cache], 2, f"{m}/manifest_folder",
             "a folder; --root of a manifest is the manifest CSV file itself", kind=KIND),
        Case("folder named .png read as an image", "call",
             _call("mer_keras.preprocess.images.read_image", lambda f, c: f(c / "messages/image_folder.png")),
             DataError, f"{m}/image_folder.png", "a folder, not an image file", kind=KIND),
        # metadata.json: a list, empty, a folder
        Case("metadata.json holding a JSON list, to predict", "cli",
             ["predict", f"{m}/list_meta_run", "{c}/images/good.png", *cache], 2, f"{m}/list_meta_run/metadata.json",
             list_object, kind=KIND),
        Case("metadata.json holding a JSON list, to evaluate", "cli", ["evaluate", f"{m}/list_meta_run", *cache], 2,
             f"{m}/list_meta_run/metadata.json", list_object, kind=KIND),
        Case("metadata.json holding a JSON list, to export", "cli", ["export", f"{m}/list_meta_run"], 2,
             f"{m}/list_meta_run/metadata.json", list_object, kind=KIND),
        Case("metadata.json holding a JSON list, library predict", "call",
             _call("mer_keras.predict", lambda f, c: f(c / "messages/list_meta_run", [c / "images/good.png"])),
             ModelFileError, f"{m}/list_meta_run/metadata.json", list_object, kind=KIND),
        Case("metadata.json holding a JSON list, read by the runtime", "call",
             _call("mer_keras.runtime.metadata.ModelMetadata",
                   lambda cls, c: cls.from_file(c / "messages/metadata_list.json")),
             MetadataError, f"{m}/metadata_list.json", "it holds a JSON list; expected a JSON object", kind=KIND),
        Case("metadata.json holding a JSON list", "edge.run", ["--model", f"{m}/list_meta_tflite/model.tflite",
                                                               *good_edge], 2,
             f"{m}/list_meta_tflite/metadata.json", "it holds a JSON list; expected a JSON object", kind=KIND),
        Case("empty metadata.json", "edge.run", ["--model", f"{m}/empty_meta_tflite/model.tflite", *good_edge], 2,
             f"{m}/empty_meta_tflite/metadata.json", "cannot read metadata (empty file", kind=KIND),
        Case("--metadata a folder", "edge.run", ["--model", "{c}/models/good.tflite", "--metadata", f"{m}/conv_run",
                                                 *good_edge], 2,
             f"{m}/conv_run", "a folder; expected the metadata.json file", kind=KIND),
        Case("empty metadata.json, to predict", "cli", ["predict", f"{m}/empty_meta_run", "{c}/images/good.png",
                                                        *cache], 2,
             f"{m}/empty_meta_run/metadata.json", empty, kind=KIND),
        Case("metadata.json that is a folder, to evaluate", "cli", ["evaluate", f"{m}/folder_meta_run", *cache], 2,
             f"{m}/folder_meta_run/metadata.json", "a folder; expected a JSON file", kind=KIND),
        # config.json, results.json, a Keras archive's config
        Case("config.json holding a JSON list, to explain", "cli",
             ["explain", f"{m}/list_config_run", "--sample", "sub01/clip001"], 2, f"{m}/list_config_run/config.json",
             list_object, kind=KIND),
        Case("empty config.json, to export", "cli", ["export", f"{m}/empty_config_run"], 2,
             f"{m}/empty_config_run/config.json", empty, kind=KIND),
        Case("config.json holding a JSON list, to merge", "cli", ["merge", f"{m}/list_config_run", "--out",
                                                                  "{c}/merge_out"], 2,
             f"{m}/list_config_run/config.json", "holds a JSON list; expected the run's configuration object",
             kind=KIND),
        Case("Keras archive whose config.json is a JSON list", "call",
             _call("mer_keras.load_model", lambda f, c: f(c / "messages/list_config.keras")), ModelFileError,
             f"{m}/list_config.keras", "config.json holds a JSON list", kind=KIND),
        Case("results.json holding a JSON list, to ensemble", "cli",
             ["ensemble", f"{m}/ensemble_list_a", f"{m}/ensemble_ok", "--out", "{c}/ensemble_out"], 2,
             f"{m}/ensemble_list_a/results.json", list_object, kind=KIND),
        Case("results.json without its figures, to ensemble", "cli",
             ["ensemble", f"{m}/ensemble_no_figures", f"{m}/ensemble_ok", "--out", "{c}/ensemble_out"], 2,
             f"{m}/ensemble_no_figures/results.json", "no overall uf1 and uar", kind=KIND),
        Case("spotting file holding a JSON list, to resume", "cli", ["spot", "--out", f"{m}/spot_list", *cache], 2,
             f"{m}/spot_list/videos/long_000.json", "not a spotting file (expected a JSON object", kind=KIND),
        Case("empty spotting file, to resume", "cli", ["spot", "--out", f"{m}/spot_empty", *cache], 2,
             f"{m}/spot_empty/videos/long_000.json", "not a readable spotting file", kind=KIND),
        Case("spot --learned-model that is a model's metadata.json", "cli",
             ["spot", "--method", "learned", "--learned-model", "{c}/models/metadata.json", "--out",
              f"{m}/spot_new", *cache], 2, "{c}/models/metadata.json", "not a spotting second stage", kind=KIND),
        Case("spot --learned-model that does not exist", "cli",
             ["spot", "--method", "learned", "--learned-model", f"{m}/no_stage.json", "--out", f"{m}/spot_new",
              *cache], 2, f"{m}/no_stage.json", "cannot read the spotting second stage", kind=KIND),
        Case("spot --min-snr with --method learned", "cli",
             ["spot", "--method", "learned", "--min-snr", "3", "--out", f"{m}/spot_new", *cache], 2,
             "--min-snr", "is a rule of --method analytic", kind=KIND),
        Case("spot --learned-model without --method learned", "cli",
             ["spot", "--learned-model", "{c}/models/metadata.json", "--out", f"{m}/spot_new", *cache], 2,
             "--learned-model", "needs --method learned", kind=KIND),
        # a file where a folder is expected and the reverse
        Case("model file given as the run to explain", "cli",
             ["explain", f"{m}/conv_run/model.keras", "--sample", "sub01/clip001"], 2, f"{m}/conv_run/model.keras",
             "a file; expected a run folder", kind=KIND),
        Case("model file given as the run to export", "cli", ["export", f"{m}/conv_run/model.keras"], 2,
             f"{m}/conv_run/model.keras", "a file; expected a finished run folder", kind=KIND),
        Case("model file given as a run to merge", "cli", ["merge", f"{m}/conv_run/model.keras", "--out",
                                                           "{c}/merge_out"], 2,
             f"{m}/conv_run/model.keras", "a file; expected a run folder", kind=KIND),
        Case("--model a folder of .tflite files", "edge.run", ["--model", "{c}/models/tflite", *good_edge], 2,
             "{c}/models/tflite", "a folder; give the .tflite model file inside it with --model (good.tflite,",
             kind=KIND),
        Case("--model a run folder without a .tflite file", "edge.run", ["--model", f"{m}/conv_run", *good_edge], 2,
             f"{m}/conv_run", "(it holds none: export one with", kind=KIND),
        Case("--model a Keras model", "edge.run", ["--model", "{c}/models/good.keras", *good_edge], 2,
             "{c}/models/good.keras", "a Keras model; the edge runner takes a .tflite model", kind=KIND),
        Case("--model a folder to benchmark", "edge.bench", ["--model", "{c}/models", *good_edge], 2, "{c}/models",
             "a folder; give the .tflite model file inside it", kind=KIND),
        # explain: layers and the figure's path
        Case("explain --layer predictions (no spatial output)", "cli", [*explain, "--layer", "predictions"], 2,
             "--layer predictions", "has no spatial output (shape (None, 3)), so Grad-CAM has no map to draw; layers "
             "with a spatial output: conv", kind=KIND),
        Case("explain --layer that the model lacks", "cli", [*explain, "--layer", "conv9"], 2, "--layer conv9",
             "no layer 'conv9' in tiny_conv; layers with a spatial output: conv", kind=KIND),
        Case("explain --layer, library Grad-CAM", "call", _call("mer_keras.explain.grad_cam", _grad_cam_on_dense),
             UnknownNameError, "--layer pool", "layer 'pool' of tiny_conv has no spatial output", kind=KIND),
        Case("explain --out an existing folder", "cli", [*explain, "--out", f"{m}/conv_run"], 2, f"--out {m}/conv_run",
             "a folder; expected a file path to write", kind=KIND),
        Case("explain --out an existing file that is not a picture", "cli",
             [*explain, "--out", f"{m}/conv_run/results.json"], 2, f"--out {m}/conv_run/results.json",
             "expected a .png file path", kind=KIND,
             check=_unchanged("messages/conv_run/results.json", '{"note": "the run\'s results"}\n')),
    ]


def _grad_cam_on_dense(grad_cam, c):
    """Grad-CAM of the conv run's model at its pooling layer (a vector, no map)."""
    import numpy as np

    from mer_keras.models.io import load_model

    return grad_cam(load_model(c / "messages/conv_run"), np.zeros((28, 28, 3), np.float32), "pool")
