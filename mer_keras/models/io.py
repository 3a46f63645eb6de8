"""Loading saved models safely (no pickle, no Lambda code) and checked against their ``metadata.json``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from mer_keras.errors import ModelFileError

if TYPE_CHECKING:  # checking and reading files here needs no TensorFlow; loading a model imports it
    from mer_keras._keras import keras


def save_keras(model, path: str | Path) -> None:
    """Save a Keras model as a Keras v3 ``.keras`` archive, atomically.

    The archive is written to a temporary file beside ``path`` and renamed onto it, so ``path``
    is either absent, the old file or the complete new one.

    Args:
        model: a ``keras.Model``. path: the ``.keras`` file to write (its folder is created).
    Raises:
        OSError: the folder is not writable (nothing is left at ``path``).
    """
    from mer_keras import atomic

    with atomic.atomic_path(path) as tmp:
        model.save(tmp)


def read_json(path: str | Path) -> dict:
    """A run's JSON file (metadata.json, config.json, export_report.json, results.json): one JSON object.

    Raises:
        ModelFileError: missing, a folder, empty, not valid JSON, or JSON that is not an object
            (a list, a number...): the message names the file and what was expected.
    """
    import json

    path = Path(path)
    if path.is_dir():
        raise ModelFileError(f"{path}: a folder; expected a JSON file")
    try:
        text = path.read_text()
        if not text.strip():
            raise ModelFileError(f"{path}: empty file; expected a JSON object")
        data = json.loads(text)
    except (OSError, ValueError) as exc:  # ValueError: JSONDecodeError, UnicodeDecodeError (a binary file)
        if isinstance(exc, ModelFileError):
            raise
        raise ModelFileError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ModelFileError(f"{path}: holds a JSON {json_type(data)}; expected a JSON object ({{...}})")
    return data


def json_type(value) -> str:
    """The JSON name of a parsed value's type, for messages: object, list, string, number, true/false, null."""
    return {dict: "object", list: "list", str: "string", bool: "true/false", type(None): "null"}.get(
        type(value), "number")


#: Members a Keras v3 archive saved by mer-keras may hold. Anything else is refused before Keras
#: opens the file: tf_keras reads ``model.weights.npz`` with ``np.load(allow_pickle=True)``, so an
#: archive carrying one could run code at load time whatever ``safe_mode`` says.
ARCHIVE_MEMBERS = ("config.json", "metadata.json", "model.weights.h5")

#: Python packages a model's config.json may name as the ``module`` of an object. tf_keras imports
#: any module a config names and takes any attribute of it, so a config naming another package
#: would run that package's import-time code and hand its functions to the model.
CONFIG_MODULES = ("keras", "tf_keras", "mer_keras")


def _foreign_modules(node) -> set[str]:
    """``module`` values of the objects in a model config outside :data:`CONFIG_MODULES`."""
    found, stack = set(), [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            module = item.get("module")
            if "class_name" in item and module and str(module).split(".")[0] not in CONFIG_MODULES:
                found.add(str(module))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def check_keras_archive(path: str | Path) -> None:
    """Refuse a ``.keras`` file that is not a plain Keras v3 archive, without loading it.

    A ``.keras`` file must be a readable zip holding ``config.json`` and ``model.weights.h5``
    (and optionally ``metadata.json`` and ``assets/``) and nothing else. This is what makes loading
    safe beyond ``safe_mode``: tf_keras loads a non-zip ``.keras`` file (e.g. a renamed HDF5
    model) with its legacy loader, which rebuilds Lambda layers from marshalled Python bytecode
    and runs it; and it unpickles ``model.weights.npz`` members.

    Raises:
        ModelFileError: empty, truncated, not a zip, a zip that is not a Keras archive, an
            archive with members outside :data:`ARCHIVE_MEMBERS`, or a config naming other modules
            (the message names the file).
    """
    import json
    import zipfile

    p = Path(path)
    size = p.stat().st_size
    if size == 0:
        raise ModelFileError(f"{p}: empty file (0 bytes), not a Keras model")
    with open(p, "rb") as fh:
        magic = fh.read(8)
    if magic.startswith(b"\x89HDF"):
        raise ModelFileError(f"{p}: an HDF5 (legacy .h5) model renamed .keras; legacy models are not loaded "
                             f"(they can carry Python bytecode): re-save it as a Keras v3 .keras archive")
    try:
        with zipfile.ZipFile(p) as zf:
            names = zf.namelist()
            bad_member = zf.testzip()  # CRC of every member: a damaged archive fails here, not half-way in Keras
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        raise ModelFileError(f"{p}: not a Keras archive (truncated or not a zip file: {exc})") from None
    if bad_member is not None:
        raise ModelFileError(f"{p}: damaged Keras archive (member {bad_member} fails its CRC check)")
    missing = [m for m in ("config.json", "model.weights.h5") if m not in names]
    if missing:
        raise ModelFileError(f"{p}: a zip file but not a Keras v3 archive (no {', '.join(missing)}; holds "
                             f"{names[:5]}{' ...' if len(names) > 5 else ''})")
    foreign = [n for n in names if n not in ARCHIVE_MEMBERS and not n.startswith("assets/")]
    if foreign:
        raise ModelFileError(f"{p}: Keras archive with unexpected members {foreign[:5]} (only "
                             f"{', '.join(ARCHIVE_MEMBERS)} and assets/ are loaded; .npz weights would be unpickled)")
    try:
        with zipfile.ZipFile(p) as zf:
            config = json.loads(zf.read("config.json"))
    except (ValueError, UnicodeDecodeError) as exc:  # json.JSONDecodeError is a ValueError
        raise ModelFileError(f"{p}: Keras archive whose config.json is not JSON ({exc})") from None
    if not isinstance(config, dict) or "class_name" not in config:
        raise ModelFileError(f"{p}: Keras archive whose config.json holds a JSON {json_type(config)}"
                             f"{' without class_name' if isinstance(config, dict) else ''}; expected the model's "
                             "config object ({\"class_name\": ..., \"config\": ...})")
    modules = _foreign_modules(config)
    if modules:
        raise ModelFileError(f"{p}: model config names objects of the Python modules {sorted(modules)[:5]}; only "
                             f"{', '.join(CONFIG_MODULES)} objects are loaded (importing others could run their code)")


def _keras_model_note(folder: Path) -> str:
    """What a released folder's metadata.json says about its missing Keras model (``keras_model``)."""
    import json

    try:
        return str(json.loads((folder / "metadata.json").read_text()).get("keras_model") or "")
    except (OSError, ValueError, AttributeError):
        return ""


def resolve_model_path(path: str | Path) -> Path:
    """A ``.keras`` file, or a run folder holding ``model.keras``, checked without loading it.

    Raises:
        ModelFileError: nothing there, not a ``.keras`` file, or a file
            :func:`check_keras_archive` refuses (the message names it).
    """
    p = _locate(path)
    check_keras_archive(p)
    return p


def _locate(path: str | Path) -> Path:
    """The ``.keras`` file of ``path`` (a run folder gives its ``model.keras``), not yet read.

    Raises:
        ModelFileError: nothing there, not a ``.keras`` file, or a folder.
    """
    from mer_keras.presets import resolve, unknown_note

    p = resolve(path)
    if p.is_dir():
        p = p / "model.keras"
    if not p.exists():
        note = _keras_model_note(p.parent)
        raise ModelFileError(f"no model at {p}" + (f": {note}" if note else unknown_note(path)))
    if p.suffix != ".keras":
        raise ModelFileError(f"{p}: expected a .keras file (TFLite models are read by mer_keras.export.tflite; "
                             f"legacy .h5 models are not loaded)")
    if not p.is_file():
        raise ModelFileError(f"{p}: a folder, not a .keras file")
    return p


def metadata_beside(path: str | Path) -> tuple[Path, dict] | None:
    """The ``metadata.json`` beside a model file, read, with its ``classes`` and ``files`` checked.

    Returns:
        (its path, its contents), or None when there is none.
    Raises:
        ModelFileError: a metadata.json that is not a JSON object (:func:`read_json`), whose
            ``classes`` is not a list of unique non-empty names
            (:func:`mer_keras.runtime.metadata.check_classes`), or whose ``files`` records a
            malformed sha256 (:func:`mer_keras.runtime.metadata.check_files`).
    """
    from mer_keras.runtime.metadata import check_classes, check_files

    meta_path = Path(path).parent / "metadata.json"
    if not meta_path.exists() and not meta_path.is_symlink():
        return None
    meta = read_json(meta_path)
    if "classes" in meta:
        check_classes(meta["classes"], meta_path)
    check_files(meta.get("files"), meta_path)
    return meta_path, meta


def num_classes(model) -> int | None:
    """K of a classifier: its output's last dimension, or for a multi-output model that of its
    ``predictions`` layer (as :func:`mer_keras.factory.inference_model` picks it); None when a
    multi-output model has no such layer."""
    if len(model.outputs) == 1:
        return int(model.output_shape[-1])
    try:
        return int(model.get_layer("predictions").output_shape[-1])
    except ValueError:
        return None


def _load_archive(p: Path) -> keras.Model:
    """Build the model of a checked ``.keras`` archive from its config and load its weights from a
    copy of ``model.weights.h5`` on disk.

    ``keras.models.load_model`` reads the HDF5 weights through ``zipfile``, whose member file
    rewinds to the start of the member and reads forward again at every backward seek (CPython
    3.11), and HDF5 seeks back and forth: loading takes time quadratic in the file size (HTNet's
    1.68 GB archive: 758 s through Keras on 2 shared cores, 6.5 s this way; docs/BENCHMARKS.md).
    One sequential copy, then HDF5 on a real file, gives the same model. Archives with
    ``assets/`` (mer-keras writes none) go through Keras unchanged.
    """
    import json
    import shutil
    import tempfile
    import zipfile

    from mer_keras._keras import keras

    with zipfile.ZipFile(p) as zf:
        if any(n.startswith("assets/") for n in zf.namelist()):
            return keras.models.load_model(p, compile=False, safe_mode=True)
        config = json.loads(zf.read("config.json"))
        config["compile_config"] = None  # compile=False
        model = keras.saving.deserialize_keras_object(config, safe_mode=True)
        with tempfile.TemporaryDirectory(prefix="mer-keras-load-") as folder:
            weights = Path(folder) / "model.weights.h5"
            with zf.open("model.weights.h5") as src, open(weights, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 24)
            model.load_weights(weights)
    return model


def load_model(path: str | Path, allow_modified: bool = False, *,
               warn: Callable[[str], None] | None = None) -> keras.Model:
    """Load a Keras model saved by mer-keras (``.keras``) or a run folder's ``model.keras``.

    Checked against the ``metadata.json`` beside it, when there is one: its sha256 against the one
    recorded in ``files`` (hashed once, before the archive is opened:
    :func:`mer_keras.runtime.metadata.verify_model_file`), and its number of outputs against
    ``classes`` (:func:`mer_keras.runtime.metadata.check_output_count`).

    Safe deserialization: the archive is checked first (:func:`check_keras_archive`: a zip with
    only the config and HDF5 weights, so neither the legacy loader nor an unpickled ``.npz`` is ever
    reached), then the model is rebuilt from its config with ``safe_mode=True``, which refuses
    Lambda layers' Python code, and its weights are read from a temporary copy of the archive's
    HDF5 member (linear time; see :func:`_load_archive`). Optimizer state in the archive is ignored.

    Args:
        path: a ``.keras`` file, a folder holding ``model.keras``, or a preset's name
            (``ststnet_megc2019_composite``: :mod:`mer_keras.presets`).
        allow_modified: load a file whose sha256 differs from metadata.json's, with a warning
            (``--allow-modified``); the other checks stay.
        warn: where that warning goes; default :func:`warnings.warn` with
            :class:`~mer_keras.runtime.metadata.ModelModifiedWarning`.
    Returns:
        The ``keras.Model``, uncompiled.
    Raises:
        ModelFileError: missing, truncated, foreign or unsafe file; a sha256 other than
            metadata.json records (unless ``allow_modified``); another number of outputs than
            metadata.json's classes; an unreadable metadata.json or invalid classes (the message
            names the file).
    """
    import mer_keras.layers.custom  # noqa: F401  (registers the package's Keras layers for deserialization)
    import mer_keras.models  # noqa: F401
    from mer_keras.runtime.metadata import check_output_count, verify_model_file

    p = _locate(path)
    beside = metadata_beside(p)
    if beside is not None:  # the bytes first: a changed file is named as such, before its zip is read
        verify_model_file(p, beside[1].get("files"), beside[0], allow_modified, warn)
    check_keras_archive(p)
    try:
        model = _load_archive(p)
    except OSError as exc:
        import errno
        import tempfile

        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS):  # where Keras unpacks the archive
            raise OSError(exc.errno, f"{exc.strerror or exc} while unpacking {p} into the temporary folder "
                                     f"{tempfile.gettempdir()} (set TMPDIR to a folder with space)") from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ModelFileError(f"{p}: not a loadable Keras model ({type(exc).__name__}: {first})") from exc
    except Exception as exc:  # keras raises many types for corrupt archives
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ModelFileError(f"{p}: not a loadable Keras model ({type(exc).__name__}: {first})") from exc
    if beside is not None and "classes" in beside[1]:
        outputs = num_classes(model)
        if outputs is not None:
            check_output_count(p, outputs, beside[1]["classes"], beside[0], allow_modified)
    return model
