"""What every command shares: the console and the one-red-line error policy."""

from __future__ import annotations

import functools

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)

#: Library errors shown as one red line with exit code 2 (no traceback).
USER_ERRORS = (ValueError, KeyError, FileNotFoundError, NotADirectoryError, PermissionError)


def user_errors(fn):
    """Decorator: turn library errors into one red line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as exc:
            msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            err_console.print(f"[bold red]error:[/] {msg}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper
