"""The bad-input case type shared by the corpus's groups (``tests/robustness/kinds/``) and its runner."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

#: Expected outcome of a bad clip without ``--strict``: listed as skipped, the command goes on.
SKIPPED = "skipped"
SHEET = "CASME2-coding-20140508.xlsx"


@dataclass(frozen=True)
class Case:
    """One bad input and what must happen.

    Attributes:
        name: the bad input, in words. entry: ``cli`` (``mer-keras``), ``edge.run`` or
            ``edge.bench`` (``python -m ...``), or ``call`` (a library function).
        target: the argv (``{c}`` stands for the corpus root), or for ``call`` a function of the
            :class:`~corrupt.Corpus` that calls the library.
        expect: exit code, :data:`SKIPPED`, or the exception type a library call must raise.
        where: fragment naming the file or row (``{c}`` as above) that the message must contain.
        reason: fragment saying what is wrong, on the same line as ``where``.
        kind: the group the case belongs to (the table is grouped by it).
        check: optional ``check(corpus, outcome) -> list of problems`` run after the case: what must
            hold besides the message (results kept intact, nothing written, a warning recorded).
    """

    name: str
    entry: str
    target: list[str] | Callable
    expect: int | str | type
    where: str
    reason: str
    kind: str = "corrupt or missing files"
    check: Callable | None = None

    @property
    def entry_point(self) -> str:
        """The command or function, for the table: ``mer-keras data prepare``, ``load_model`` ..."""
        if self.entry == "cli":
            words = [w for w in self.target if not w.startswith("-") and "{c}" not in w]
            return "mer-keras " + " ".join(words[:2] if words[0] == "data" else words[:1])
        if self.entry.startswith("edge."):
            return f"python -m {self.entry}"
        return self.target.__doc__ or self.target.__name__


def _call(name: str, fn: Callable) -> Callable:
    """A library call for the table: ``fn(function, corpus)`` with ``function`` imported from ``name``
    (``package.module.function``), which is also what the table shows."""
    import importlib

    def call(c):
        module, attr = name.rsplit(".", 1)
        return fn(getattr(importlib.import_module(module), attr), c)

    call.__doc__ = name
    return call
