"""Groups of bad inputs beyond corrupt files, one module per kind of fault (issue 22).

Each module has ``KIND`` (its group's name in the table), ``build(corpus)`` (writes its files under
``corpus.root / <module name>``) and ``cases() -> list[Case]``.
"""

from __future__ import annotations

import importlib

#: Module name -> group name, in the table's order.
MODULES = ("filesystem", "data", "identities", "caches", "model_files", "resume", "numbers", "messages")


def _modules():
    out = []
    for name in MODULES:
        try:
            out.append(importlib.import_module(f"{__name__}.{name}"))
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
    return out


KINDS = tuple(m.KIND for m in _modules())


def build(corpus) -> None:
    for m in _modules():
        (corpus.root / m.__name__.rsplit(".", 1)[1]).mkdir(parents=True, exist_ok=True)
        m.build(corpus)


def cases() -> list:
    return [c for m in _modules() for c in m.cases()]
