"""``mer-keras models``: list the registered architectures."""

from __future__ import annotations

from mer_keras.cli.common import console


def models() -> None:
    """List registered models: input representation and shape, auxiliary training losses, learning rate, source."""
    from rich.table import Table

    from mer_keras.registry import get_spec, list_models

    table = Table("model", "representation", "input", "extra losses", "lr", "source")
    for name in list_models():
        s = get_spec(name)
        rep = s.representation + "".join(f" ({k}={v})" for k, v in s.representation_options.items())
        losses = ", ".join(f"{out} x{w:g}" for out, (_, w) in s.aux_losses.items()) or "-"
        table.add_row(name, rep, "x".join(map(str, s.input_shape)), losses, f"{s.learning_rate:g}", s.citation)
    console.print(table)
