"""The package's exceptions: what the command line shows as one red line with exit code 2.

Every error that a user can cause with a bad option, bad data, a bad model file or a bad run
folder is a :class:`MerKerasError`. Each subclass also derives from the builtin exception that
describes it (``ValueError``, ``KeyError``, ``FileNotFoundError``), so ``except ValueError`` in
user code keeps working. Anything else that escapes is a bug, and the command line lets its
traceback show.
"""

from __future__ import annotations


class MerKerasError(Exception):
    """Base of every error the user can cause and mend; its message names the file, row or option."""

    def __str__(self) -> str:  # KeyError quotes its message; these never do
        return str(self.args[0]) if self.args else ""


class OptionError(MerKerasError, ValueError):
    """An option value that is out of range, unknown, or does not fit the other options."""


class UnknownNameError(MerKerasError, KeyError):
    """A name (model, layer, dataset, format) that is not in its table; the message lists the known ones."""


class DataError(MerKerasError, ValueError):
    """A database, coding sheet, manifest, frame or image the loaders cannot use (file and row named)."""


class MissingFileError(MerKerasError, FileNotFoundError):
    """A file or folder the user named does not exist."""


class ModelFileError(MerKerasError, ValueError):
    """A model file (``.keras``, ``.tflite``) or its ``metadata.json`` cannot be used."""


class RunFolderError(MerKerasError, ValueError):
    """A run folder that is not one, is complete when it should not be, or disagrees with the data."""
