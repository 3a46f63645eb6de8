"""The checks of the ``metadata.json`` fields every reader relies on, and the error they raise.

``classes`` (:func:`check_classes`: a list of unique, non-empty names in output order) and
``files`` (:func:`check_files`: sha256 values of 64 hex digits); a bad field is a
:class:`MetadataError` naming the file and the field. :meth:`~mer_keras.runtime.metadata.ModelMetadata.from_dict`,
the model loaders and the run readers call them; the checks of a model file against
``metadata.json`` (its sha256, its output count) are in :mod:`mer_keras.runtime.metadata`.

TF-free: the standard library and :mod:`mer_keras.errors`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from mer_keras.errors import ModelFileError


class MetadataError(ModelFileError):
    """A ``metadata.json`` that cannot be read or lacks a usable field (the message names the file and field).

    A :class:`~mer_keras.errors.ModelFileError`, hence a ``ValueError``; the command line shows it
    as one line, the ``edge/`` runner re-raises it as its ``EdgeInputError``.
    """


#: A sha256 as ``metadata.json`` records it: 64 hex digits.
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def _json_kind(value) -> str:
    """The JSON name of a parsed value's type, for messages."""
    return {dict: "object", list: "list", str: "string", bool: "true/false", type(None): "null"}.get(
        type(value), "number")


def check_classes(classes, source: str | Path = "metadata.json") -> list[str]:
    """``metadata.json``'s ``classes``: a list of unique, non-empty class names in output order.

    A string (``"neg"`` would otherwise be read as the classes n, e, g), a name that is not text or
    is blank, or a name given twice (one class's probability reported under another's name) is
    refused.

    Returns:
        The names as a new list.
    Raises:
        MetadataError: ``"{source}: missing or invalid field classes ..."`` saying what is wrong.
    """
    head = f"{source}: missing or invalid field classes"
    if isinstance(classes, str):
        raise MetadataError(f"{head}: the string {classes!r}; expected a list of class names in output order, "
                            'e.g. ["negative", "positive", "surprise"]')
    if not isinstance(classes, (list, tuple)):
        raise MetadataError(f"{head}: a JSON {_json_kind(classes)}; expected a list of class names in output order")
    if not classes:
        raise MetadataError(f"{head}: an empty list; expected the class names in output order")
    for i, name in enumerate(classes):
        if not isinstance(name, str) or not name.strip():
            raise MetadataError(f"{head}: entry {i + 1} of {len(classes)} is {json.dumps(name)}; every class "
                                "name must be non-empty text")
    seen: dict[str, int] = {}
    for name in classes:
        seen[name] = seen.get(name, 0) + 1
    twice = [name for name, n in seen.items() if n > 1]
    if twice:
        raise MetadataError(f"{head}: {json.dumps(list(classes))} names {twice[0]!r} {seen[twice[0]]} times; each "
                            "output of the model has one class name, given once")
    return list(classes)


def check_files(files, source: str | Path = "metadata.json") -> dict[str, dict]:
    """``metadata.json``'s ``files``: {file name: {"sha256": 64 hex digits (files), "bytes", ...}}.

    Returns:
        The mapping ({} when the field is absent or null).
    Raises:
        MetadataError: not an object, an entry that is not an object, or a ``sha256`` that is not
            64 hex digits (``"{source}: missing or invalid field files.<name>.sha256 ..."``).
    """
    if files is None:
        return {}
    if not isinstance(files, dict):
        raise MetadataError(f"{source}: missing or invalid field files: a JSON {_json_kind(files)}; expected an "
                            'object {"<file name>": {"sha256": ..., "bytes": ...}}')
    for name, entry in files.items():
        if not isinstance(entry, dict):
            raise MetadataError(f"{source}: missing or invalid field files.{name}: a JSON {_json_kind(entry)}; "
                                'expected an object {"sha256": ..., "bytes": ...}')
        digest = entry.get("sha256")
        if digest is not None and not (isinstance(digest, str) and _SHA256.fullmatch(digest)):
            raise MetadataError(f"{source}: missing or invalid field files.{name}.sha256 {json.dumps(digest)}; "
                                "expected 64 hex digits")
    return files
