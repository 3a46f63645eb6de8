"""``mer-keras models``: list the registered architectures."""

from __future__ import annotations

from mer_keras.cli.common import console


def recipe_text(values: dict) -> str:
    """One line of a recipe's training options, e.g. ``lr 5e-05, 500 epochs, batch 256, no flips``."""
    words = {"lr": lambda v: f"lr {v:g}", "epochs": lambda v: f"{v} epochs", "batch_size": lambda v: f"batch {v}",
             "augment": lambda v: "flips" if v else "no flips", "shift": lambda v: f"shift {v} px",
             "class_weight": lambda v: "balanced class weights" if v else "unweighted",
             "variant": lambda v: f"variant {v}"}
    return ", ".join(words[k](v) for k, v in values.items() if k in words)


def models() -> None:
    """List registered models: input, auxiliary losses, learning rate, variants (first: default), recipes, source.

    The ``project`` recipe is the defaults of ``mer-keras train`` at the model's learning rate;
    the others (``--recipe paper``) are listed with their options and where they come from.
    """
    from rich.table import Table

    from mer_keras.registry import get_spec, list_models

    table = Table("model", "representation", "input", "extra losses", "lr", "variants", "recipes", "source")
    for name in list_models():
        s = get_spec(name)
        rep = s.representation + "".join(f" ({k}={v})" for k, v in s.representation_options.items())
        losses = ", ".join(f"{out} x{w:g}" for out, (_, w) in s.aux_losses.items()) or "-"
        recipes = "\n".join(["project", *(f"{r}: {recipe_text(s.recipe(r))} ({v['source']})"
                                           for r, v in s.recipes.items())])
        table.add_row(name, rep, "x".join(map(str, s.input_shape)), losses, f"{s.learning_rate:g}",
                      ", ".join(s.variants) or "-", recipes, s.citation)
    console.print(table)
