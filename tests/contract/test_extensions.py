"""The three extension points, each used as docs/CONTRIBUTING.md says: a toy model, a toy dataset and a
toy export format, each registered by a module written into a temporary folder (no file of the
package edited), then run through ``train`` or ``export`` end to end.

Each test restores the tables it extends, so the other tests of the process see only the
built-in rows.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
from rich.console import Console

from tests.contract.test_megc2019_flow import write_layout


@pytest.fixture
def restored_tables():
    """Snapshot the model registry, the dataset table, the formats table and the offered names;
    put them back (in place: other modules hold the same dicts) after the test."""
    from mer_keras import names, registry
    from mer_keras.data import datasets
    from mer_keras.export import formats
    from mer_keras.factory import list_models

    list_models()  # the built-in architectures registered before the snapshot
    tables = [registry._REGISTRY, datasets._TABLE, formats.FORMATS, names._EXTENSIONS]
    saved = [copy.copy(t) for t in tables]
    saved[-1] = copy.deepcopy(names._EXTENSIONS)
    yield
    for table, before in zip(tables, saved):
        table.clear()
        table.update(before)


def import_module_file(folder: Path, name: str, source: str):
    """Write ``source`` as ``folder/name.py`` and import it (as a user's own module would be)."""
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def quiet() -> Console:
    return Console(quiet=True)


TOY_MODEL = '''
    """A toy architecture: one convolution, global pooling, the classifier."""
    from mer_keras._keras import keras
    from mer_keras.registry import register_model


    @register_model("toy_pool", representation="flow", input_shape=(28, 28, 3), citation="a test's toy")
    def build_toy_pool(input_shape, num_classes, **cfg):
        inputs = keras.Input(input_shape, name="input")
        x = keras.layers.Rescaling(1 / 255.0, name="toy_scale")(inputs)
        x = keras.layers.Conv2D(4, 3, activation="relu", name="toy_conv")(x)
        x = keras.layers.GlobalAveragePooling2D(name="toy_pool")(x)
        outputs = keras.layers.Dense(num_classes, activation="softmax", name="predictions")(x)
        return keras.Model(inputs, outputs, name="toy_pool")
'''


def test_a_toy_model_registered_in_its_own_module_trains_with_loso(tmp_path, restored_tables, cache_dir):
    from mer_keras import list_models, names
    from mer_keras.jobs.train import TrainOptions, train

    import_module_file(tmp_path, "toy_model", TOY_MODEL)
    assert "toy_pool" in list_models() and "toy_pool" in names.offered("models")
    run = train(TrainOptions(model="toy_pool", data="megc2019-flow", root=str(write_layout(tmp_path / "flow")),
                             epochs=1, batch_size=4, final=True, export=False, out=str(tmp_path / "runs"),
                             cache_dir=str(cache_dir)), quiet())
    results = json.loads((run / "results.json").read_text())
    assert results["model"] == "toy_pool" and len(results["folds"]) == 6  # one LOSO fold per subject
    assert json.loads((run / "metadata.json").read_text())["model"] == "toy_pool"


TOY_DATASET = '''
    """A toy database: ready flow images named <subject>_<label>_<n>.png in one folder."""
    from pathlib import Path

    from mer_keras.data.datasets import DatasetSpec, register_dataset
    from mer_keras.data.manifest import ImageRecord
    from mer_keras.data.records import Dataset

    CLASSES = ("negative", "positive", "surprise")


    def load(root, *, strict=False, **_):
        images = []
        for path in sorted(Path(root).glob("*.png")):
            subject, label, _ = path.stem.split("_")
            images.append(ImageRecord(subject, label, str(path), "toy_flow", str(path)))
        return Dataset("toy_flow", list(CLASSES), [], images=images, root=str(root))


    register_dataset(DatasetSpec(
        "toy_flow", load, CLASSES,
        fixed_input={"representation": "flow", "flow_encoding": "minmax", "size": 28,
                     "what": "optical-flow images", "why": "the toy images are min-max encoded"},
        window={"seconds": 0.5, "frames": 100, "fps": 200.0, "stride_frames": 50}, citation="a test's toy"))
'''


def write_toy_images(root: Path) -> Path:
    """3 subjects x 3 classes x 2 images, 28 x 28 noise whose mean tells the class apart."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for s in ("s1", "s2", "s3"):
        for k, label in enumerate(("negative", "positive", "surprise")):
            for n in range(2):
                img = np.clip(rng.normal(60 + 60 * k, 20, (28, 28, 3)), 0, 255).astype(np.uint8)
                cv2.imwrite(str(root / f"{s}_{label}_{n}.png"), img)
    return root


def test_a_toy_dataset_registered_in_its_own_module_trains_with_loso(tmp_path, restored_tables, cache_dir):
    from mer_keras import names
    from mer_keras.errors import OptionError
    from mer_keras.jobs.train import TrainOptions, train

    import_module_file(tmp_path, "toy_dataset", TOY_DATASET)
    assert "toy_flow" in names.offered("datasets")
    root = str(write_toy_images(tmp_path / "images"))
    common = dict(data="toy_flow", root=root, epochs=1, batch_size=4, export=False, out=str(tmp_path / "runs"),
                  cache_dir=str(cache_dir))
    with pytest.raises(OptionError, match="toy_flow holds optical-flow images"):  # the row's fixed input
        train(TrainOptions(model="learnet", **common), quiet())
    run = train(TrainOptions(model="ststnet", final=True, **common), quiet())
    results = json.loads((run / "results.json").read_text())
    assert results["dataset"] == "toy_flow" and len(results["folds"]) == 3  # one LOSO fold per subject
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["preprocessing"]["flow_encoding"] == "minmax"  # recorded from the row for deployment
    assert meta["window"]["frames"] == 100  # the row's window: ready images hold no durations


TOY_FORMAT = '''
    """A toy export format: the legacy Keras HDF5 file."""
    from mer_keras.export.exporters import Exporter
    from mer_keras.export.formats import ExportFormat, register_format


    class H5Exporter(Exporter):
        def write(self, model, fmt, path, x_train, y_train, qat):
            import warnings

            from mer_keras import atomic

            with atomic.atomic_path(path) as tmp, warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "HDF5 is legacy": the toy's point
                model.save(str(tmp), save_format="h5")
            return {"h5": True}

        def load(self, path):
            from mer_keras._keras import keras

            model = keras.models.load_model(str(path), compile=False)
            return lambda x, batch_size=64: model.predict(x, batch_size=batch_size, verbose=0)


    register_format(ExportFormat("keras_h5", "h5", None, "model.h5", False, "legacy Keras HDF5", H5Exporter()))
'''


def test_a_toy_export_format_registered_in_its_own_module_exports_and_verifies(tmp_path, restored_tables, cache_dir):
    from mer_keras.jobs.export import ExportOptions, export
    from mer_keras.jobs.train import TrainOptions, train

    import_module_file(tmp_path, "toy_format", TOY_FORMAT)
    run = train(TrainOptions(model="ststnet", data="megc2019-flow", root=str(write_layout(tmp_path / "flow")),
                             epochs=1, batch_size=4, folds=["none"], export=False, out=str(tmp_path / "runs"),
                             cache_dir=str(cache_dir)), quiet())
    results = export(ExportOptions(run=str(run), format="h5"), quiet())
    info = results["keras_h5"]
    assert (run / "model.h5").is_file() and info["h5"] is True
    assert info["verification"]["max_abs_diff"] < 1e-4  # the same float32 network, read back
    assert "model.h5" in json.loads((run / "metadata.json").read_text())["files"]  # recorded with its sha256
