"""Options written once: a job's dataclass is its schema.

Each field of a job's options dataclass is declared with :func:`option`, which carries its
default, its help text, its bounds and its choices. From that one declaration:

* the typer command is built (:func:`mer_keras.cli.common.command`), so ``--help`` shows the
  same default and help as the Python API;
* :func:`validate` checks a value whether it came from the command line, from Python or from a
  run's ``config.json``, with one message per bad option.

Per-model defaults (learning rate, input representation) live in the model registry
(:class:`mer_keras.registry.ModelSpec`); a field whose default is ``None`` there says so in its
help.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import MISSING, Field, field, fields
from typing import Any

from mer_keras.errors import OptionError


def option(default: Any = MISSING, help: str = "", *, flag: str | None = None, min: float | None = None,
           max: float | None = None, above: float | None = None, choices: Callable[[], Sequence[str]] | None = None,
           argument: bool = False, cli: bool = True, cli_type: Any = None,
           parse: Callable[[Any], Any] | None = None, secondary: str | None = None) -> Field:
    """A field of a job's options dataclass with what the command line and validation need.

    Args:
        default: the default value (``MISSING`` for a required argument).
        help: help text, shown by ``--help``.
        flag: the option's name on the command line (default ``--<field-name-with-dashes>``).
        min, max: inclusive bounds of a number. above: exclusive lower bound (``lr`` > 0).
        choices: callable returning the accepted names (called lazily: registries load on use).
        argument: a positional argument instead of an option.
        cli: False for fields set only from Python or recorded state (not on the command line).
        cli_type: the command line's type when it differs from the field's (e.g. ``str`` for a
            comma-separated list); ``parse`` turns the command-line value into the field's.
        secondary: the negative form of a boolean flag (``--no-export``); booleans without it are
            plain switches (``--strict``).
    """
    meta = {"help": help, "flag": flag, "min": min, "max": max, "above": above, "choices": choices,
            "argument": argument, "cli": cli, "cli_type": cli_type, "parse": parse, "secondary": secondary}
    if default is MISSING:
        return field(metadata=meta)
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def flag_name(f: Field) -> str:
    """The command-line name of a field: ``--batch-size`` for ``batch_size``."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def validate(opts) -> None:
    """Check every field of ``opts`` against its declared bounds and choices.

    Raises:
        OptionError: the first bad value, named as on the command line (``--lr 0.0: ...``).
    """
    for f in fields(opts):
        value = getattr(opts, f.name)
        if value is None:
            continue
        meta = f.metadata
        name = flag_name(f)
        bounded = any(meta.get(k) is not None for k in ("min", "max", "above"))
        if bounded:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise OptionError(f"{name} {value!r}: expected a number")
            if not math.isfinite(value):
                raise OptionError(f"{name} {value}: expected a finite number")
            if meta.get("min") is not None and value < meta["min"]:
                raise OptionError(f"{name} {value}: expected at least {meta['min']:g}")
            if meta.get("max") is not None and value > meta["max"]:
                raise OptionError(f"{name} {value}: expected at most {meta['max']:g}")
            if meta.get("above") is not None and value <= meta["above"]:
                raise OptionError(f"{name} {value}: expected a number above {meta['above']:g}")
        if meta.get("choices") is not None:
            known = list(meta["choices"]())
            if value not in known:
                raise OptionError(f"{name} {value!r}: expected one of {', '.join(known)}")


def from_config(cls, config: dict, **overrides):
    """An options dataclass from a run's ``config.json`` (keys that are not fields are ignored)."""
    names = {f.name for f in fields(cls)}
    return cls(**{**{k: v for k, v in config.items() if k in names}, **overrides})
