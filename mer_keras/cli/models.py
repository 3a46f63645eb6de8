"""``mer-keras models``: list the registered architectures."""

from __future__ import annotations

from mer_keras.cli.common import console


def models() -> None:
    """List registered models with their input representation, input shape and source."""
    from rich.table import Table

    from mer_keras.registry import get_spec, list_models

    table = Table("model", "representation", "input", "source")
    for name in list_models():
        s = get_spec(name)
        table.add_row(name, s.representation, "x".join(map(str, s.input_shape)), s.citation)
    console.print(table)
