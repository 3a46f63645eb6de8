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

import functools
import math
import os
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import MISSING, Field, field, fields
from typing import Any

from mer_keras.errors import OptionError


def option(default: Any = MISSING, help: str = "", *, flag: str | None = None, min: float | None = None,
           max: float | None = None, above: float | None = None, choices: Callable[[], Sequence[str]] | None = None,
           argument: bool = False, cli: bool = True, cli_type: Any = None,
           parse: Callable[[Any], Any] | None = None, secondary: str | None = None,
           check: Callable[[Any], str | None] | None = None) -> Field:
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
        check: ``value -> None or what is wrong`` ("expected ..."), for values bounds cannot describe
            (a dict of loss weights, a search space); called on values that are not None.
    """
    meta = {"help": help, "flag": flag, "min": min, "max": max, "above": above, "choices": choices,
            "argument": argument, "cli": cli, "cli_type": cli_type, "parse": parse, "secondary": secondary,
            "check": check}
    if default is MISSING:
        return field(metadata=meta)
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def flag_name(f: Field) -> str:
    """The command-line name of a field: ``--batch-size`` for ``batch_size``."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _num(x: float) -> str:
    """A bound as the message shows it: 1, 0.5, 4294967295, 1e-08."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e16 else f"{x:g}"


def _bounds(meta) -> str:
    """The declared range in words: "at least 1", "above 0", "from 10 to 1000"."""
    lo, hi, above = meta.get("min"), meta.get("max"), meta.get("above")
    if lo is not None and hi is not None:
        return f"from {_num(lo)} to {_num(hi)}"
    parts = ([f"above {_num(above)}"] if above is not None else []) + ([f"at least {_num(lo)}"] if lo is not None
                                                                       else [])
    parts += [f"at most {_num(hi)}"] if hi is not None else []
    return " and ".join(parts)


@functools.cache
def _kinds(cls) -> dict[str, tuple[type, ...]]:
    """Per field of the dataclass ``cls``, the plain types its annotation allows (``NoneType`` for
    ``X | None``); a field whose annotation cannot be read is left out (not type-checked)."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001  (an annotation that cannot be evaluated: no type check)
        return {}
    out = {}
    for name, hint in hints.items():
        members = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
        out[name] = tuple(typing.get_origin(m) or m for m in members)
    return out


def _type_problem(kinds: tuple[type, ...], value) -> str | None:
    """What is wrong with the type of ``value`` for a field of ``kinds`` (None: nothing)."""
    if value is None and type(None) in kinds:
        return None
    if bool in kinds and isinstance(value, bool):
        return None
    if isinstance(value, bool):  # a bool is an int to Python, not to a user
        return "expected a whole number" if int in kinds else "expected a number" if float in kinds else None
    if int in kinds and isinstance(value, int):
        return None
    if float in kinds and isinstance(value, (int, float)):
        return None
    if str in kinds and isinstance(value, (str, os.PathLike)):
        return None
    if (list in kinds and isinstance(value, (list, tuple))) or (dict in kinds and isinstance(value, dict)):
        return None
    if any(k not in (int, float, bool, str, list, dict, type(None)) for k in kinds):
        return None  # a type this check does not know
    if int in kinds:
        return "expected a whole number"
    if float in kinds:
        return "expected a number"
    if bool in kinds:
        return "expected true or false"
    if str in kinds:
        return "expected text"
    return "expected a list" if list in kinds else "expected KEY=VALUE pairs (a mapping)"


def _problem(f: Field, kinds: tuple[type, ...] | None, value) -> str | None:
    """What is wrong with ``value`` for the field ``f`` (None: nothing)."""
    meta = f.metadata
    bounded = any(meta.get(k) is not None for k in ("min", "max", "above"))
    wrong = _type_problem(kinds, value) if kinds else None
    whole = bool(kinds) and int in kinds and float not in kinds
    b = _bounds(meta) if bounded else ""
    sep = " " if b.startswith(("above", "from")) else ", "
    if bounded and value is not None and (wrong or isinstance(value, bool) or not isinstance(value, (int, float))):
        return f"expected {'a whole number' if whole else 'a finite number'}{sep}{b}"
    if wrong or value is None:
        return wrong
    if bounded:
        if not whole and not _finite(value):  # a whole number out of range is said so below
            return f"expected a finite number{sep}{b}"
        if (meta.get("min") is not None and value < meta["min"]) or (meta.get("max") is not None
                                                                     and value > meta["max"]):
            return f"expected {('a whole number ' if whole else 'a number ') if b.startswith('from') else ''}{b}"
        if meta.get("above") is not None and value <= meta["above"]:
            return f"expected a number {_bounds(meta)}"
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and not _finite(value):
        return "expected a finite number"
    if meta.get("choices") is not None:
        known = list(meta["choices"]())
        if value not in known:
            return f"expected one of {', '.join(known)}"
    if meta.get("check") is not None:
        return meta["check"](value)
    return None


def _python_number(value):
    """A numpy number (``np.int64(4)``, ``np.float32(0.5)``, ``np.bool_``) as the Python number it
    is; anything else as it is."""
    import numbers

    if type(value).__module__ == "numpy" and isinstance(value, (numbers.Number, bool)) or \
            type(value).__name__ == "bool_":
        return value.item()
    return value


def _finite(value: int | float) -> bool:
    """Whether a number is finite as a float (an int beyond 1.8e308 is not: no float holds it)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _shown(value) -> str:
    """A value as a message shows it: numbers as typed (``0.0``, ``nan``), a list or mapping as JSON
    (``{"lr": [NaN]}``: the console would take ``[nan]`` for markup), anything else quoted."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, (list, tuple, dict)):
        import json

        return json.dumps(value, default=str)
    return repr(value)


def _cli_form(f: Field, kinds: tuple[type, ...] | None, value) -> bool:
    """Whether ``value`` is a field's command-line form (the text ``--folds`` takes, the list of
    ``KEY=V1,V2`` that ``--space`` takes) given where the field's own type is expected: the API then
    parses it as the command line does."""
    parse, cli_type = f.metadata.get("parse"), f.metadata.get("cli_type")
    if parse is None or cli_type is None or value is None or not kinds or _type_problem(kinds, value) is None \
            and not (cli_type is str and isinstance(value, str) and str not in kinds):
        return False
    origin = typing.get_origin(cli_type) or cli_type
    return isinstance(value, origin)


def validate(opts, source: str | os.PathLike | None = None) -> None:
    """Check every field of ``opts`` against its type, its declared bounds, choices and check.

    Every job's Python entry calls it before any work, so the command line, the Python API and a
    run's recorded ``config.json`` meet the same checks; a value in its command-line form
    (``folds="sub01,sub02"``) is parsed as the command line parses it and kept parsed. A number
    is of the field's type (a whole number where one is expected; a bool is not a number) and
    finite, within its bounds. numpy numbers (``np.int64(4)``) are taken as the Python numbers
    they are, and kept as such.

    Args:
        source: the ``config.json`` the values were read from: the message names the file and
            key (``runs/x/config.json: "lr" is nan, expected ...``) instead of the option.
    Raises:
        OptionError: the first bad value, named as on the command line (``--lr 0.0: expected a
            number above 0``) or as in ``source``.
    """
    kinds = _kinds(type(opts))
    for f in fields(opts):
        value = _python_number(getattr(opts, f.name))
        if _cli_form(f, kinds.get(f.name), value):  # "sub01,sub02" from Python, as the command line takes it
            value = f.metadata["parse"](value)
        if value is not getattr(opts, f.name):  # np.int64(4) is the whole number 4: kept as Python's
            object.__setattr__(opts, f.name, value)
        problem = _problem(f, kinds.get(f.name), value)
        if problem:
            if source is not None:
                raise OptionError(f'{source}: "{f.name}" is {_shown(value)}, {problem}')
            raise OptionError(f"{flag_name(f)} {_shown(value)}: {problem}")


def from_config(cls, config: dict, source: str | os.PathLike = "config.json", **overrides):
    """An options dataclass from a run's ``config.json`` (keys that are not fields are ignored),
    validated (:func:`validate`): a recorded value edited to ``"nan"``, ``1e308`` or ``0`` is
    refused naming ``source`` and the key.

    Raises:
        OptionError: a recorded value of the wrong type or out of range. TypeError: a required
            field is missing.
    """
    names = {f.name for f in fields(cls)}
    opts = cls(**{**{k: v for k, v in config.items() if k in names}, **overrides})
    validate(opts, source)
    return opts
