"""What every command shares: the console, the one-red-line error policy, and commands built
from a job's options schema (:mod:`mer_keras.jobs.schema`)."""

from __future__ import annotations

import errno
import functools
import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, fields
from enum import Enum
from typing import Annotated, Any

import typer
from rich.console import Console

from mer_keras.errors import MerKerasError


def _console(stderr: bool = False) -> Console:
    """A rich console; when its stream is not a terminal (a log file, a pipe), lines are not cut at
    80 columns: text runs on (soft wrap) and tables and bars get 160 columns (``COLUMNS`` overrides)."""
    import os
    import sys

    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty() or os.environ.get("COLUMNS"):
        return Console(stderr=stderr)
    return Console(stderr=stderr, width=160, soft_wrap=True)


console = _console()
err_console = _console(stderr=True)

#: Errors shown as one red line with exit code 2 (no traceback): the package's own, and the
#: operating system's refusals (a read-only folder, a full disk), which name their path. Anything
#: else is a bug and shows its traceback.
USER_ERRORS = (MerKerasError, OSError)


def user_errors(fn):
    """Decorator: turn library errors into one red line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as exc:
            msg = str(exc)
            if isinstance(exc, OSError) and not isinstance(exc, MerKerasError):
                msg = os_error_message(exc)
            from rich.markup import escape

            err_console.print(f"[bold red]error:[/] {escape(msg)}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


def os_error_message(exc: OSError) -> str:
    """One line for an operating-system error: its path when it has one, what it means for the user
    (a read-only place, a full disk) when that is known."""
    import os

    what = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):  # a read-only folder or file system
        what += " (this process may not write there)"
    elif exc.errno in (errno.ENOSPC, errno.EDQUOT):
        import tempfile

        what += f" (the disk of the output, the cache or the temporary folder {tempfile.gettempdir()} is full)"
    if exc.filename is not None:
        where = os.fsdecode(exc.filename) if isinstance(exc.filename, (str, bytes, os.PathLike)) else str(exc.filename)
        return f"{where}: {what}"
    return what


def _optional(tp) -> tuple[Any, bool]:
    """(inner type, True) for ``X | None`` / ``Optional[X]``, else (tp, False)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _parameter(f, hint) -> inspect.Parameter:
    """The typer parameter of one schema field."""
    meta = f.metadata
    default = f.default if f.default is not MISSING else (f.default_factory() if f.default_factory is not MISSING
                                                          else inspect.Parameter.empty)
    tp, optional = _optional(meta.get("cli_type") or hint)
    if meta.get("cli_type") is not None:
        optional = optional or default is None
    if meta.get("choices") is not None:
        tp = Enum(f.name.title().replace("_", ""), {n: n for n in meta["choices"]()}, type=str)
    if tp is bool and optional:  # a tri-state flag: --final / --no-final / not given
        tp = bool | None
    elif optional:
        tp = tp | None
    if meta.get("argument"):
        info = typer.Argument(help=meta["help"])
    else:
        names = [meta.get("flag") or "--" + f.name.replace("_", "-")]
        if meta.get("secondary"):
            names = [f"{names[0]}/{meta['secondary']}"]
        info = typer.Option(*names, help=meta["help"])
    return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[tp, info])


def command(schema: type, job: Callable[[Any], Any], doc: str | None = None) -> Callable:
    """A typer command whose options are the fields of the dataclass ``schema``.

    The command turns what typer parsed into ``schema(...)`` (enum values to their names, each
    field's ``parse`` applied) and calls ``job(options)``. Library errors become one red line and
    exit code 2 (:func:`user_errors`).
    """
    hints = typing.get_type_hints(schema)
    shown = [f for f in fields(schema) if f.metadata.get("cli", True)]
    params = [_parameter(f, hints[f.name]) for f in shown]
    params.sort(key=lambda p: p.default is not inspect.Parameter.empty)  # arguments first

    def cmd(**given):
        values = {}
        for f in shown:
            if f.name not in given:
                continue
            value = given[f.name]
            value = value.value if isinstance(value, Enum) else value
            parse = f.metadata.get("parse")
            values[f.name] = parse(value) if parse else value
        return job(schema(**values))

    cmd.__signature__ = inspect.Signature(params)
    cmd.__annotations__ = {p.name: p.annotation for p in params}
    cmd.__doc__ = doc or job.__doc__
    cmd.__name__ = getattr(job, "__name__", "command").lstrip("_")
    return user_errors(cmd)
