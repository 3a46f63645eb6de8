"""Model files that are not what metadata.json says (issue 31): a weight byte flipped, another run's
model, a 2-class model in a 3-class run, classes named twice or given as a string, a malformed
sha256, and what killed exports leave behind.

Every command that loads a model file checks its sha256 against the ``files`` of the metadata.json
beside it and its outputs against ``classes`` (:func:`mer_keras.runtime.metadata.verify_model_file`,
:func:`~mer_keras.runtime.metadata.check_output_count`, :func:`~mer_keras.runtime.metadata.check_classes`):
one line naming the file, what metadata.json records and what the file is, exit code 2; with
``--allow-modified`` a file whose bytes changed is used with a warning (never one whose outputs
are not the classes, nor a damaged archive).

Files, under ``model_files/``, each a run folder (the corpus's tiny 3-class model as ``model.keras``
and ``model_fp32.tflite``, its config.json, a metadata.json whose ``files`` records their sha256):

* ``good/``: as described; ``flipped/``: one weight byte of each model file flipped (the
  Dense kernel's bytes, found in the file); ``other_run/``: both files of another model of the
  same architecture (other weights: valid files, other sha256; its metadata.json names casme2 as
  the training data, so that ``--init-from`` it into a synthetic run is no leak of test subjects);
* ``two_class/``: a 2-class model in the 3-class run (metadata.json records the 3-class files);
  ``two_class_unlisted/``: the same with a metadata.json that records no file (older runs);
* ``dup_classes/``, ``string_classes/``, ``blank_class/``: ``classes`` ``["negative", "negative",
  "surprise"]``, ``"neg"``, ``["negative", " ", "surprise"]``; ``bad_sha/``: a sha256 that is not hex;
* ``stale_temporaries/``: a good run (DIS flow, 2 x 2 synthetic clips: a quick export) holding what
  killed exports leave: a ``.saved_model.XXXXXXXX`` folder and a ``.model_fp32.XXXXXXXX.tflite``
  file of an earlier version, a staging folder of a dead process, a SavedModel set aside by a dead
  process, and staging folders of a live process and of another host (kept).

Two exports of one run at once, Ctrl-C on ``edge.run --annotate`` and an annotated video onto a
full disk need two processes, a signal or a file-size limit: tests/robustness/test_model_integrity.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import socket
from pathlib import Path

from tests.helpers.cases import Case, _call

KIND = "model files that are not what metadata.json says"

#: A process id that cannot exist (above Linux's largest, 2**22).
DEAD_PID = 2 ** 22 + 12345


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _flip_weight(data: bytes, weights: bytes) -> bytes:
    """``data`` with one byte of ``weights`` (found in it) flipped: a weight's exponent changes."""
    at = data.find(weights)
    assert at >= 0, "the weights' bytes are not in the file"
    out = bytearray(data)
    out[at + 3] ^= 0x01
    return bytes(out)


def _models(c):
    """(keras bytes, tflite bytes) of the corpus's tiny model, of another model of the same
    architecture, of a 2-class model, and the tiny model's flipped files."""
    import tempfile
    from pathlib import Path

    import numpy as np

    from mer_keras._keras import keras
    from mer_keras.export.tflite import convert
    from mer_keras.models.io import load_model

    good = load_model(c / "models/good.keras")
    kernel, bias = good.get_layer("predictions").get_weights()
    good_keras, good_tflite = (c / "models/good.keras").read_bytes(), (c / "models/good.tflite").read_bytes()
    flipped = (_flip_weight(good_keras, kernel.astype("<f4").tobytes()),
               _flip_weight(good_tflite, np.ascontiguousarray(kernel.T).astype("<f4").tobytes()))

    def files(model) -> tuple[bytes, bytes]:
        with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
            path = Path(tmp) / "model.keras"
            model.save(path)
            return path.read_bytes(), convert(model, "none")

    other = keras.models.clone_model(good)
    other.set_weights([w.copy() for w in good.get_weights()])
    other.get_layer("predictions").set_weights([-kernel, bias + 0.5])  # another run: other weights
    inp = keras.Input((28, 28, 3), name="input")
    x = keras.layers.Rescaling(1 / 127.5, -1, name="input_scaling")(inp)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    two = keras.Model(inp, keras.layers.Dense(2, activation="softmax", name="predictions")(x), name="tiny2")
    return (good_keras, good_tflite), files(other), files(two), flipped


def build(c) -> None:
    base = json.loads((c / "models/metadata.json").read_text())
    config = json.loads((c / "runs/good/config.json").read_text())
    (good_keras, good_tflite), other, two, flipped = _models(c)
    recorded = {"model.keras": {"format": "keras", "sha256": _sha(good_keras), "bytes": len(good_keras)},
                "model_fp32.tflite": {"format": "tflite_fp32", "sha256": _sha(good_tflite), "bytes": len(good_tflite)}}

    def run(name: str, keras_bytes: bytes, tflite_bytes: bytes, files: dict | None = None, config_edit=None,
            **meta_edit) -> None:
        folder = c / "model_files" / name
        folder.mkdir(parents=True)
        (folder / "model.keras").write_bytes(keras_bytes)
        (folder / "model_fp32.tflite").write_bytes(tflite_bytes)
        (folder / "config.json").write_text(json.dumps({**config, **(config_edit or {})}))
        (folder / "metadata.json").write_text(json.dumps({**base, "files": recorded if files is None else files,
                                                          **meta_edit}))

    run("good", good_keras, good_tflite)
    run("flipped", *flipped)
    # the released pretraining weights (--init-from) with one byte flipped in their middle
    import shutil

    released = Path(__file__).resolve().parents[3] / "saved_models" / "micro_attention_synthetic_macro"
    shutil.copytree(released, c / "model_files" / "released_flipped")
    weights = c / "model_files" / "released_flipped" / "weights_fp16.h5"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x40
    weights.write_bytes(bytes(data))
    run("other_run", *other, dataset="casme2")  # not synthetic: --init-from from it is no leak into a synthetic run
    run("two_class", *two)
    run("two_class_unlisted", *two, files={})
    run("dup_classes", good_keras, good_tflite, classes=["negative", "negative", "surprise"])
    run("string_classes", good_keras, good_tflite, classes="neg")
    run("blank_class", good_keras, good_tflite, classes=["negative", " ", "surprise"])
    run("bad_sha", good_keras, good_tflite,
        files={**recorded, "model_fp32.tflite": {**recorded["model_fp32.tflite"], "sha256": "not-a-sha256"}})
    dis = {**config["representation_config"], "flow_method": "dis"}
    run("stale_temporaries", good_keras, good_tflite, config_edit={"representation_config": dis, "subjects": 2,
                                                                   "clips": 2},
        preprocessing={**base["preprocessing"], "flow_method": "dis"})
    stale = c / "model_files/stale_temporaries"
    host = socket.gethostname()
    for name in (".saved_model.k3j4h5g6", f".export-{host}-{DEAD_PID}-abcd1234", f".export-{host}-1-live0001",
                 f".export-elsewhere.example-{DEAD_PID}-abcd1234", f".saved_model.old-{DEAD_PID}"):
        (stale / name).mkdir()
        (stale / name / "saved_model.pb").write_bytes(b"half-written")
    (stale / ".model_fp32.ab12cd34.tflite").write_bytes(good_tflite[:100])


# -- checks: what must hold besides the message ------------------------------------------------

def _stale_cleaned(root, outcome) -> list[str]:
    """The killed exports' leftovers are gone, the live and foreign ones kept, the SavedModel put
    back, and the new export recorded with the sha256 of the file on disk."""
    run = root / "model_files/stale_temporaries"
    host = socket.gethostname()
    out = []
    for name in (".saved_model.k3j4h5g6", f".export-{host}-{DEAD_PID}-abcd1234", ".model_fp32.ab12cd34.tflite",
                 f".saved_model.old-{DEAD_PID}"):
        if (run / name).exists():
            out.append(f"{name} (left by a killed export) is still there")
    for name in (f".export-{host}-1-live0001", f".export-elsewhere.example-{DEAD_PID}-abcd1234"):
        if not (run / name).is_dir():
            out.append(f"{name} (a live process's or another host's) was removed")
    if not (run / "saved_model/saved_model.pb").is_file():
        out.append("the SavedModel set aside by the killed export was not put back")
    ours = [p.name for p in run.glob(".export-*") if f"-{os.getpid()}-" in p.name]
    if ours or (run / ".lock").exists():
        out.append(f"this export left {ours or '.lock'} behind")
    meta = json.loads((run / "metadata.json").read_text())
    entry = meta["files"].get("model_fp32.tflite", {})
    if entry.get("sha256") != _sha((run / "model_fp32.tflite").read_bytes()):
        out.append("metadata.json does not record the new model_fp32.tflite")
    return out


def _warned_in(rel: str, fragment: str):
    """A check: ``rel`` (a JSON file the command wrote) lists a warning containing ``fragment``."""
    def check(root, outcome) -> list[str]:
        path = root / rel
        if not path.is_file():
            return [f"{path} was not written"]
        warnings = json.loads(path.read_text()).get("warnings", [])
        return [] if any(fragment.replace("{c}", str(root)) in w for w in warnings) else [
            f"{path} records no warning naming {fragment}"]
    return check


def cases() -> list[Case]:
    from mer_keras.errors import ModelFileError
    from mer_keras.runtime.metadata import MetadataError

    f = "{c}/model_files"
    cache = ["--cache-dir", "{c}/cache"]
    small_eval = ["--subjects", "2", "--clips", "1", *cache]
    image = "{c}/images/good.png"
    video = ["--video", "{c}/videos/good.mp4"]

    def changed(run: str) -> str:  # (the line names the file as ``where``; a reason holds no {c})
        return f"/model_files/{run}/metadata.json records sha256"

    two_outputs = "the model has 2 outputs but"  # ... {c}/model_files/<run>/metadata.json lists 3 classes

    def load_model(rel: str, **kw):
        return _call("mer_keras.load_model", lambda fn, c: fn(c / rel, **kw))

    def library_predict(rel: str):
        return _call("mer_keras.predict", lambda fn, c: fn(c / rel, [c / "images/good.png"], cache_dir=c / "cache"))

    def case(name, entry, target, expect, where, reason, check=None):
        return Case(name, entry, target, expect, where, reason, kind=KIND, check=check)

    out = [
        # a weight byte flipped
        case("model.keras with a weight byte flipped, to predict", "cli", ["predict", f"{f}/flipped", image, *cache],
             2, f"{f}/flipped/model.keras", changed("flipped")),
        case("model_fp32.tflite with a weight byte flipped, to predict", "cli",
             ["predict", f"{f}/flipped/model_fp32.tflite", image, *cache], 2, f"{f}/flipped/model_fp32.tflite",
             changed("flipped")),
        case("model files with a weight byte flipped, to evaluate", "cli", ["evaluate", f"{f}/flipped", *small_eval],
             2, f"{f}/flipped/model.keras", changed("flipped")),
        case("model.keras with a weight byte flipped, to export", "cli", ["export", f"{f}/flipped"], 2,
             f"{f}/flipped/model.keras", changed("flipped")),
        case("model.keras with a weight byte flipped, to explain", "cli",
             ["explain", f"{f}/flipped", "--sample", "sub01/clip001"], 2, f"{f}/flipped/model.keras",
             changed("flipped")),
        case("model_fp32.tflite with a weight byte flipped", "edge.run",
             ["--model", f"{f}/flipped/model_fp32.tflite", *video], 2, f"{f}/flipped/model_fp32.tflite",
             changed("flipped")),
        case("model_fp32.tflite with a weight byte flipped, to benchmark", "edge.bench",
             ["--model", f"{f}/flipped/model_fp32.tflite", *video], 2, f"{f}/flipped/model_fp32.tflite",
             changed("flipped")),
        case("model.keras with a weight byte flipped, loaded", "call", load_model("model_files/flipped"),
             ModelFileError, f"{f}/flipped/model.keras", changed("flipped")),
        case("model_fp32.tflite with a weight byte flipped, library predict", "call",
             library_predict("model_files/flipped/model_fp32.tflite"), ModelFileError,
             f"{f}/flipped/model_fp32.tflite", changed("flipped")),
        case("model.keras with a weight byte flipped, --allow-modified (a damaged archive still)", "cli",
             ["predict", f"{f}/flipped", image, "--allow-modified", *cache], 2, f"{f}/flipped/model.keras",
             "damaged Keras archive (member model.weights.h5 fails its CRC check)"),
        # another run's model
        case("another run's model.keras, to predict", "cli", ["predict", f"{f}/other_run", image, *cache], 2,
             f"{f}/other_run/model.keras", changed("other_run")),
        case("another run's model files, to evaluate", "cli", ["evaluate", f"{f}/other_run", *small_eval], 2,
             f"{f}/other_run/model.keras", changed("other_run")),
        case("another run's model.keras, to export", "cli", ["export", f"{f}/other_run"], 2,
             f"{f}/other_run/model.keras", changed("other_run")),
        case("another run's model.keras as --init-from", "cli",
             ["train", "--init-from", f"{f}/other_run", "--subjects", "2", "--clips", "1", "--epochs", "1",
              "--no-export", "--out", "{c}/train_out", *cache], 2, f"{f}/other_run/model.keras", changed("other_run")),
        case("released --init-from weights with a byte flipped", "cli",
             ["train", "--model", "micro_attention", "--init-from", f"{f}/released_flipped", "--subjects", "2",
              "--clips", "1", "--epochs", "1", "--no-export", "--out", "{c}/train_out", *cache], 2,
             f"{f}/released_flipped/weights_fp16.h5", changed("released_flipped")),
        case("another run's model_fp32.tflite", "edge.run", ["--model", f"{f}/other_run/model_fp32.tflite", *video],
             2, f"{f}/other_run/model_fp32.tflite", changed("other_run")),
        case("another run's model.keras, --allow-modified", "cli",
             ["predict", f"{f}/other_run", image, "--allow-modified", "--out", f"{f}/other_run_predictions.json",
              *cache], 0, f"{f}/other_run/model.keras", "used anyway (--allow-modified)",
             check=_warned_in("model_files/other_run_predictions.json", f"{f}/other_run/model.keras")),
        case("another run's model files to evaluate, --allow-modified", "cli",
             ["evaluate", f"{f}/other_run", "--allow-modified", "--data", "synthetic", "--out", f"{f}/other_run_eval",
              *small_eval], 0,
             f"{f}/other_run/model_fp32.tflite", "used anyway (--allow-modified)",
             check=_warned_in("model_files/other_run_eval/results.json", f"{f}/other_run/model_fp32.tflite")),
        case("another run's model_fp32.tflite, --allow-modified", "edge.run",
             ["--model", f"{f}/other_run/model_fp32.tflite", *video, "--allow-modified"], 0,
             f"{f}/other_run/model_fp32.tflite", "used anyway (--allow-modified)"),
        # a 2-class model in a 3-class run
        case("2-class model.keras in a 3-class run, to predict", "cli", ["predict", f"{f}/two_class", image, *cache],
             2, f"{f}/two_class/model.keras", changed("two_class")),
        case("2-class model.keras in a 3-class run, --allow-modified", "cli",
             ["predict", f"{f}/two_class", image, "--allow-modified", *cache], 2, f"{f}/two_class/model.keras",
             two_outputs),
        case("2-class model.keras in a 3-class run, to export with --allow-modified", "cli",
             ["export", f"{f}/two_class", "--allow-modified"], 2, f"{f}/two_class/model.keras", two_outputs),
        case("2-class model.keras, metadata.json recording no file, to predict", "cli",
             ["predict", f"{f}/two_class_unlisted", image, *cache], 2, f"{f}/two_class_unlisted/model.keras",
             two_outputs),
        case("2-class model_fp32.tflite, metadata.json recording no file, to predict", "cli",
             ["predict", f"{f}/two_class_unlisted/model_fp32.tflite", image, *cache], 2,
             f"{f}/two_class_unlisted/model_fp32.tflite", two_outputs),
        case("2-class models, metadata.json recording no file, to evaluate", "cli",
             ["evaluate", f"{f}/two_class_unlisted", *small_eval], 2, f"{f}/two_class_unlisted/model.keras",
             two_outputs),
        case("2-class model.keras, metadata.json recording no file, to export", "cli",
             ["export", f"{f}/two_class_unlisted"], 2, f"{f}/two_class_unlisted/model.keras",
             two_outputs),
        case("2-class model_fp32.tflite, metadata.json recording no file", "edge.run",
             ["--model", f"{f}/two_class_unlisted/model_fp32.tflite", *video], 2,
             f"{f}/two_class_unlisted/model_fp32.tflite", two_outputs),
        case("2-class model.keras, metadata.json recording no file, loaded", "call",
             load_model("model_files/two_class_unlisted"), ModelFileError, f"{f}/two_class_unlisted/model.keras",
             two_outputs),
    ]
    # metadata.json's classes: a name twice, a string, a blank name
    for run, said in (("dup_classes", "names 'negative' 2 times"),
                      ("string_classes", "missing or invalid field classes: the string 'neg'"),
                      ("blank_class", 'entry 2 of 3 is " "; every class name must be non-empty text')):
        meta = f"{f}/{run}/metadata.json"
        what = run.replace("_", " ")
        out += [
            case(f"metadata.json with {what}, to predict", "cli", ["predict", f"{f}/{run}", image, *cache], 2, meta,
                 said),
            case(f"metadata.json with {what}, to evaluate", "cli", ["evaluate", f"{f}/{run}", *small_eval], 2, meta,
                 said),
            case(f"metadata.json with {what}, to export", "cli", ["export", f"{f}/{run}"], 2, meta, said),
            case(f"metadata.json with {what}", "edge.run", ["--model", f"{f}/{run}/model_fp32.tflite", *video], 2,
                 meta, said),
            case(f"metadata.json with {what}, loaded", "call", load_model(f"model_files/{run}"), ModelFileError, meta,
                 said),
            case(f"metadata.json with {what}, read by the runtime", "call",
                 _call("mer_keras.runtime.metadata.ModelMetadata",
                       lambda cls, c, run=run: cls.from_file(c / f"model_files/{run}/metadata.json")),
                 MetadataError, meta, said),
        ]
    bad_sha = "missing or invalid field files.model_fp32.tflite.sha256 \"not-a-sha256\"; expected 64 hex digits"
    out += [
        case("metadata.json with a sha256 that is not hex, to predict", "cli",
             ["predict", f"{f}/bad_sha/model_fp32.tflite", image, *cache], 2, f"{f}/bad_sha/metadata.json", bad_sha),
        case("metadata.json with a sha256 that is not hex", "edge.run",
             ["--model", f"{f}/bad_sha/model_fp32.tflite", *video], 2, f"{f}/bad_sha/metadata.json", bad_sha),
        # what killed exports left
        case("export of a run holding what killed exports left", "cli",
             ["export", f"{f}/stale_temporaries", "--format", "tflite"], 0, f"{f}/stale_temporaries",
             "removed what killed exports left", check=_stale_cleaned),
    ]
    return out
