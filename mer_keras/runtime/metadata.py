"""``metadata.json``: the one schema of what a deployed model needs to be fed correctly.

Written beside a run's model by ``mer-keras train`` and ``mer-keras export``
(:func:`mer_keras.export.metadata.build_metadata` returns :meth:`ModelMetadata.to_dict`), and read
by the ``edge/`` runner and the package (:meth:`ModelMetadata.from_file`). The keys, in file order:

* ``mer_keras_version``, ``model`` (registry name), ``classes`` (names in output order);
* ``input``: ``shape`` [H, W, C] (or [T, H, W, C]), ``dtype`` float32, ``range`` [0, 255],
  ``normalisation``; int8 TFLite models take round(x / scale + zero_point) with the stored
  input quantization;
* ``preprocessing``: the :class:`~mer_keras.preprocess.representation.RepresentationConfig` fields
  plus ``alignment``, ``frames_used`` and ``apex_in_training`` (prose for people);
* ``window``: the sliding window over a video, {"seconds", "frames", "fps", "stride_frames"}, or
  null (metadata written before windows were recorded);
* ``dataset``, ``protocol``; ``files``: {filename: {"format", "sha256", "bytes", ...}}.

Integrity: every command that loads a model file checks it against the ``metadata.json`` beside it
(:func:`verify_model_file`: the file's sha256 against ``files``, when the file is listed there) and
its output count against ``classes`` (:func:`check_output_count`), and ``classes`` itself
(:func:`check_classes`: a list of unique, non-empty names). A file that is not what metadata.json
says is refused in one line naming the file, what metadata.json records and what the file is;
``allow_modified`` (``--allow-modified``) uses a file whose bytes changed with a warning
(:class:`ModelModifiedWarning`), never a model whose outputs differ from the classes.

The checks of ``classes`` and ``files`` themselves, and :class:`MetadataError`, are in
:mod:`mer_keras.runtime.metadata_checks`.

TF-free: the standard library, :mod:`mer_keras.errors` and :mod:`mer_keras.preprocess.representation`
(numpy, OpenCV).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mer_keras.errors import ModelFileError
from mer_keras.preprocess.representation import RepresentationConfig
from mer_keras.runtime.metadata_checks import MetadataError, check_classes, check_files

#: Which frames of a window (onset = its first frame) each representation reads.
FRAMES_USED = {"dynamic_image": "every frame from onset to offset",
               "sequence": "T frames spread evenly from onset to offset (both included)",
               "flow": "the onset and apex frames", "apex": "the apex frame"}

#: How every clip is aligned (recorded in ``preprocessing.alignment``).
ALIGNMENT = ("mediapipe face mesh on the onset frame; one similarity transform per clip (eyes level, "
             "inter-ocular distance 0.36 x crop, eyes at 0.36 x crop height)")

#: Bounds of what ``metadata.json`` (or ``--window`` / ``--fps``) may say: a window of at most an
#: hour, streams of at most 100 000 frames/s. Beyond them the window length in frames overflows.
MAX_WINDOW_SECONDS, MAX_FPS = 3600.0, 1e5

#: Exceptions a malformed field raises while it is read (reported as "missing or invalid field").
_FIELD_ERRORS = (KeyError, TypeError, ValueError, ZeroDivisionError, OverflowError)


class ModelModifiedWarning(UserWarning):
    """A model file used with ``allow_modified`` although its sha256 is not the one ``metadata.json`` records."""


def sha256_file(path: str | Path) -> str:
    """Hex sha256 (64 lowercase hex digits) of a file, read in 1 MiB blocks.

    Raises:
        OSError: the file cannot be read.
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _short(digest: str) -> str:
    """The first 12 hex digits of a sha256, for messages."""
    return digest[:12]


def _warn(message: str, warn: Callable[[str], None] | None) -> None:
    if warn is None:
        import warnings

        warnings.warn(message, ModelModifiedWarning, stacklevel=4)
    else:
        warn(message)


def verify_model_file(path: str | Path, files: dict | None, source: str | Path = "metadata.json",
                      allow_modified: bool = False, warn: Callable[[str], None] | None = None,
                      can_allow: bool = True) -> str | None:
    """Check a model file against the sha256 ``metadata.json`` records for it, before it is parsed.

    The file is hashed once (:func:`sha256_file`, 1 MiB blocks; measured 0.3-0.6 GB/s on the
    2-core test machine under load: the largest released model, learnet's 5.6 MB
    ``model_fp32.tflite``, in 12-18 ms, less than the 21 ms of opening it in the interpreter).
    Files ``files`` does not list (a hand-made folder, a file renamed), and entries without a
    sha256 (a SavedModel folder), are not checked.

    Args:
        path: the model file. files: ``metadata.json``'s ``files`` (checked by :func:`check_files`).
        source: the metadata.json, for messages. allow_modified: use a file whose sha256 differs,
            with a warning instead of an error.
        warn: where the warning goes (a console's line); default :func:`warnings.warn` with
            :class:`ModelModifiedWarning`.
        can_allow: whether the caller offers ``--allow-modified`` (the refusal mentions it only then).
    Returns:
        The warning given (None when the file is as recorded or not listed).
    Raises:
        ModelFileError: the file's sha256 differs from the recorded one and not ``allow_modified``:
            ``"{path}: sha256 <file's> (<n> bytes) but {source} records sha256 <recorded> (<n> bytes)
            for it ..."``.
        OSError: the file cannot be read.
    """
    path = Path(path)
    entry = check_files(files, source).get(path.name)
    if not entry or entry.get("sha256") is None:
        return None
    recorded = str(entry["sha256"]).lower()
    actual = sha256_file(path)
    if actual == recorded:
        return None
    size = path.stat().st_size
    said = f"sha256 {_short(recorded)}..." + (f" ({entry['bytes']} bytes)" if isinstance(entry.get("bytes"), int)
                                             else "")
    what = f"{path}: sha256 {_short(actual)}... ({size} bytes) but {source} records {said} for {path.name}"
    if not allow_modified:
        raise ModelFileError(f"{what}: the file was changed or replaced since it was exported (a damaged copy, "
                             "another run's model); restore or re-export it" + (
                                 ", or pass --allow-modified (allow_modified=True) to use it anyway" if can_allow
                                 else ""))
    message = f"{what}; used anyway (--allow-modified): its outputs may not be what the run's figures describe"
    _warn(message, warn)
    return message


def check_output_count(path: str | Path, outputs: int, classes: Sequence[str], source: str | Path = "metadata.json",
                       allow_modified: bool = False) -> None:
    """Refuse a model whose number of outputs differs from ``metadata.json``'s ``classes``.

    ``allow_modified`` does not relax it: a model of K outputs cannot be reported under other than
    K class names.

    Raises:
        ModelFileError: ``"{path}: the model has {outputs} outputs but {source} lists {k} classes ..."``.
    """
    if int(outputs) != len(classes):
        raise ModelFileError(f"{path}: the model has {int(outputs)} outputs but {source} lists {len(classes)} "
                             f"classes {list(classes)}: it is not the model metadata.json describes (another run's "
                             "model, or edited classes)" + ("; --allow-modified accepts changed bytes, not other "
                                                            "outputs" if allow_modified else ""))


@dataclass(frozen=True)
class ModelInfo:
    """What a runner needs from ``metadata.json`` to slide a model's window over a stream.

    Attributes:
        classes: class names in output order. representation: how a window becomes an input.
        window_seconds: window length in seconds, or None when the training data had no frame
            rate (then ``window_frames_fixed`` frames whatever the video's rate).
        stride_fraction: stride / window length, in (0, 1e6].
        fps: the training clips' frame rate (used when a video does not state its own), in
            (0, :data:`MAX_FPS`].
        window_frames_fixed: window length in frames as recorded, or None.
    """

    classes: list[str]
    representation: RepresentationConfig
    window_seconds: float | None
    stride_fraction: float
    fps: float
    window_frames_fixed: int | None = None

    def window_frames(self, fps: float) -> tuple[int, int]:
        """(window length, stride) in frames at ``fps`` frames/s; at least 2 and 1."""
        if self.window_seconds is None:
            length = max(2, int(self.window_frames_fixed or 2))
        else:
            length = max(2, int(round(self.window_seconds * fps)))
        return length, max(1, int(round(length * self.stride_fraction)))


def _check(name: str, value: float, high: float = float("inf")) -> float:
    """``value`` when it is in (0, high]; else ValueError naming the field (NaN is refused too)."""
    if not 0 < value <= high:  # also refuses NaN
        raise ValueError(f"{name} {value} (expected a number in (0, {high:g}])")
    return value


@dataclass(frozen=True)
class ModelMetadata:
    """The contents of a run's ``metadata.json`` (see the module docstring for each key).

    Build one with :meth:`build` (writers), read one with :meth:`from_file` or :meth:`from_dict`;
    :meth:`to_dict` gives the JSON-ready dict, keys in file order.

    Attributes:
        mer_keras_version, model, classes, input, preprocessing, window, dataset, protocol, files:
            the keys of the file (``None`` for an optional key a file lacks).
        extra: keys of a read file outside the schema, kept so that writing it back loses nothing.
        source: where it was read from (for messages); not part of the file or of equality.
    """

    mer_keras_version: str | None
    model: str | None
    classes: list[str]
    input: dict[str, Any] | None
    preprocessing: dict[str, Any]
    window: dict[str, Any] | None
    dataset: str | None
    protocol: str | None
    files: dict[str, dict] | None
    extra: dict[str, Any] = field(default_factory=dict)
    source: str = field(default="metadata.json", compare=False)

    @classmethod
    def build(cls, model_name: str, classes: Sequence[str], representation: dict, input_shape: Sequence[int],
              dataset: str, protocol: str, files: dict[str, dict], window: dict | None = None,
              apex_policy: str | None = None) -> ModelMetadata:
        """The metadata of a run's exported models.

        Args:
            model_name: registry name. classes: class names in output order.
            representation: the RepresentationConfig as a dict (representation, crop, size, flow method, ...).
            input_shape: the model's input shape without the batch, (H, W, C) or (T, H, W, C).
            files: {filename: {"format", "sha256", "bytes", optional "quantization"}}.
            window: the sliding window for video input: {"seconds", "frames", "fps",
                "stride_frames"}, or None.
            apex_policy: how training chose the apex of clips whose coding gives none (``--apex``).
        Returns:
            The metadata; the model's input is float32 (N, *input_shape) in [0, 255].
        """
        import sys

        # the package is imported before any of its modules: its version is read, not imported (this
        # bottom floor, which mer_keras.models.io reads, importing the package's top would close a cycle)
        version = sys.modules[__name__.split(".")[0]].__version__
        return cls(
            mer_keras_version=version,
            model=model_name,
            classes=list(classes),
            input={"shape": list(input_shape), "dtype": "float32", "range": [0.0, 255.0],
                   "normalisation": "none outside the model (the model maps [0, 255] to [-1, 1] itself)"},
            preprocessing={**representation,
                           "alignment": ALIGNMENT,
                           "frames_used": FRAMES_USED.get(representation.get("representation"), ""),
                           "apex_in_training": "the coded apex frame" + (
                               f"; clips without one: {apex_policy}" if apex_policy else "")},
            window=window,
            dataset=dataset,
            protocol=protocol,
            files=files,
        )

    def to_dict(self) -> dict:
        """The JSON-ready dict written as ``metadata.json`` (schema keys in file order, then :attr:`extra`)."""
        return {"mer_keras_version": self.mer_keras_version, "model": self.model, "classes": self.classes,
                "input": self.input, "preprocessing": self.preprocessing, "window": self.window,
                "dataset": self.dataset, "protocol": self.protocol, "files": self.files, **self.extra}

    @classmethod
    def from_dict(cls, meta: dict, source: str | Path = "metadata.json") -> ModelMetadata:
        """Read parsed ``metadata.json`` contents, checking the fields every reader needs.

        ``preprocessing`` must hold a valid :class:`RepresentationConfig`, ``classes`` a list of
        unique non-empty names (:func:`check_classes`) and ``files``, when present, sha256 values of
        64 hex digits (:func:`check_files`); the other keys are optional (older files lack
        ``window``). The window itself is checked by :meth:`model_info`, which uses it.

        Args:
            meta: the parsed JSON object. source: the file's name, for messages.
        Raises:
            MetadataError: ``"{source}: missing or invalid field {error}"`` naming the field;
                ``"{source}: cannot read metadata ..."`` when ``meta`` is not a JSON object.
        """
        if not isinstance(meta, dict):
            kind = {list: "list", str: "string", bool: "true/false", type(None): "null"}.get(type(meta), "number")
            raise MetadataError(f"{source}: cannot read metadata (it holds a JSON {kind}; expected a JSON object "
                                "with classes, preprocessing and window)")
        try:
            RepresentationConfig.from_dict(meta["preprocessing"])
            classes = check_classes(meta["classes"], source)
            check_files(meta.get("files"), source)
            known = {"mer_keras_version", "model", "classes", "input", "preprocessing", "window", "dataset",
                     "protocol", "files"}
            return cls(mer_keras_version=meta.get("mer_keras_version"), model=meta.get("model"), classes=classes,
                       input=meta.get("input"), preprocessing=meta["preprocessing"], window=meta.get("window"),
                       dataset=meta.get("dataset"), protocol=meta.get("protocol"), files=meta.get("files"),
                       extra={k: v for k, v in meta.items() if k not in known}, source=str(source))
        except MetadataError:
            raise  # classes or files, already named
        except _FIELD_ERRORS as exc:
            raise MetadataError(f"{source}: missing or invalid field {exc}") from None

    @classmethod
    def from_file(cls, path: str | Path) -> ModelMetadata:
        """Read and check a ``metadata.json`` file (see :meth:`from_dict`).

        Raises:
            MetadataError: ``"{path}: cannot read metadata (...)"`` for a missing, unreadable,
                binary or non-JSON file; ``"{path}: missing or invalid field ..."`` otherwise.
        """
        path = Path(path)
        if path.is_dir():
            raise MetadataError(f"{path}: cannot read metadata (a folder; expected the metadata.json file)")
        try:
            text = path.read_text()
            if not text.strip():
                raise MetadataError(f"{path}: cannot read metadata (empty file; expected a JSON object)")
            meta = json.loads(text)
        except (OSError, ValueError) as exc:  # ValueError: JSONDecodeError, UnicodeDecodeError (a binary file)
            if isinstance(exc, MetadataError):
                raise
            raise MetadataError(f"{path}: cannot read metadata ({exc})") from None
        return cls.from_dict(meta, path)

    def verify(self, path: str | Path, allow_modified: bool = False,
               warn: Callable[[str], None] | None = None) -> str | None:
        """Check a model file against the sha256 this metadata records for it (:func:`verify_model_file`).

        Returns:
            The warning given with ``allow_modified`` (None when the file is as recorded or not listed).
        Raises:
            ModelFileError: the file differs and not ``allow_modified``. OSError: it cannot be read.
        """
        return verify_model_file(path, self.files, self.source, allow_modified, warn)

    @property
    def representation(self) -> RepresentationConfig:
        """The input representation recorded in ``preprocessing`` (checked by :meth:`from_dict`)."""
        return RepresentationConfig.from_dict(self.preprocessing)

    def model_info(self, window_seconds: float | None = None) -> ModelInfo:
        """What a runner needs: classes, representation and the sliding window.

        Args:
            window_seconds: override the window length (stride stays half a window unless the
                metadata says otherwise); needed for metadata written before windows were recorded.
        Returns:
            The :class:`ModelInfo`; without a recorded stride it is half a window, without a
            recorded frame rate 100 frames/s.
        Raises:
            MetadataError: ``"{source}: missing or invalid field ..."``: no window and no
                override, or a window length, frame rate or stride that is not a number > 0
                within :data:`MAX_WINDOW_SECONDS` and :data:`MAX_FPS` (named).
        """
        try:
            window = self.window or {}
            stride = _check("window.stride_frames / window.frames",
                            float(window["stride_frames"]) / float(window["frames"]) if window else 0.5, 1e6)
            fps = _check("window.fps", float(window.get("fps") or 100.0), MAX_FPS)
            fixed = None
            if window_seconds is not None:
                seconds = _check("--window", float(window_seconds), MAX_WINDOW_SECONDS)
            elif window:
                seconds = (_check("window.seconds", float(window["seconds"]), MAX_WINDOW_SECONDS)
                           if window.get("seconds") is not None else None)
                fixed = int(_check("window.frames", float(window["frames"]), MAX_WINDOW_SECONDS * MAX_FPS))
            else:
                raise KeyError("window (re-export with `mer-keras export RUN` to record it, or pass --window SECONDS)")
            return ModelInfo(list(self.classes), self.representation, seconds, stride, fps, fixed)
        except _FIELD_ERRORS as exc:
            raise MetadataError(f"{self.source}: missing or invalid field {exc}") from None
