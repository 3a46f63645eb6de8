"""``mer-keras models``: list the registered architectures."""

from __future__ import annotations

import typer

from mer_keras.cli.common import console


def recipe_text(values: dict) -> str:
    """One line of a recipe's training options, e.g. ``lr 5e-05, 500 epochs, batch 256, no flips``."""
    words = {"lr": lambda v: f"lr {v:g}", "epochs": lambda v: f"{v} epochs", "batch_size": lambda v: f"batch {v}",
             "augment": lambda v: "flips" if v else "no flips", "shift": lambda v: f"shift {v} px",
             "class_weight": lambda v: "balanced class weights" if v else "unweighted",
             "variant": lambda v: f"variant {v}"}
    return ", ".join(words[k](v) for k, v in values.items() if k in words)


PRESETS_HELP = ("List the released models usable by name (predict, evaluate, --init-from, edge.run, the API) "
                "instead of the architectures.")


def models(presets: bool = typer.Option(False, "--presets", help=PRESETS_HELP)) -> None:
    """List registered models: input, auxiliary losses, learning rate, variants (first: default), recipes, source.

    The ``project`` recipe is the defaults of ``mer-keras train`` at the model's learning rate;
    the others (``--recipe paper``) are listed with their options and where they come from.
    With ``--presets``: the released models, one line each (name, architecture, training data,
    LOSO UF1, size), and where their model card is.
    """
    from rich.table import Table

    if presets:  # one line per preset, never wrapped (names are what a user copies)
        from mer_keras.presets import PRESETS_DIR, describe, preset_names

        rows = [("preset", "model", "trained on", "LOSO UF1", "size")]
        for name in preset_names():
            d = describe(name)
            kind = "initial weights" if "weights_fp16.h5" in d["files"] else "classifier"
            rows.append((name, f"{d['model']} ({kind})", str(d["dataset"]),
                         f"{d['uf1']:.3f}" if d["uf1"] is not None else "-", f"{d['kilobytes']} kB"))
        widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
        for r in rows:
            console.print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip(), soft_wrap=True, highlight=False)
        console.print(f"in {PRESETS_DIR}: each folder's MODEL_CARD.md (or saved_models/README.md) says how it was made",
                      soft_wrap=True, highlight=False)
        return

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
