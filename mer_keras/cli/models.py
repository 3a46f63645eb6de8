"""``mer-keras models``: list the registered architectures."""

from __future__ import annotations

import typer

from mer_keras.cli.common import console, user_errors


def recipe_text(values: dict) -> str:
    """One line of a recipe's training options, e.g. ``lr 5e-05, 500 epochs, batch 256, no flips``."""
    words = {"lr": lambda v: f"lr {v:g}", "epochs": lambda v: f"{v} epochs", "batch_size": lambda v: f"batch {v}",
             "augment": lambda v: "flips" if v else "no flips", "shift": lambda v: f"shift {v} px",
             "class_weight": lambda v: "balanced class weights" if v else "unweighted",
             "variant": lambda v: f"variant {v}"}
    return ", ".join(words[k](v) for k, v in values.items() if k in words)


PRESETS_HELP = ("List the released models usable by name (predict, evaluate, --init-from, edge.run, the API) "
                "instead of the architectures.")


MODEL_HELP = "Every detail of one architecture: its input, losses, variants and recipes with their source."


@user_errors
def models(presets: bool = typer.Option(False, "--presets", help=PRESETS_HELP),
           model: str | None = typer.Option(None, "--model", help=MODEL_HELP)) -> None:
    """List registered models, one line each: input, learning rate, variants (first: default), recipes, source.

    The ``project`` recipe is the defaults of ``mer-keras train`` at the model's learning rate;
    the others (``--recipe paper``) are listed with their options and where they come from.
    With ``--model NAME``: every detail of one (losses, each recipe's options and source).
    With ``--presets``: the released models, one line each (name, architecture, training data,
    LOSO UF1, size), and where their model card is.
    """
    if presets:  # one line per preset, never wrapped (names are what a user copies)
        from mer_keras.presets import PRESETS_DIR, describe, preset_names

        rows = [("preset", "model", "trained on", "LOSO UF1", "size")]
        for name in preset_names():
            d = describe(name)
            kind = "initial weights" if "weights_fp16.h5" in d["files"] else "classifier"
            rows.append((name, f"{d['model']} ({kind})", str(d["dataset"]),
                         f"{d['uf1']:.3f}" if d["uf1"] is not None else "-", f"{d['kilobytes']} kB"))
        print_rows(rows)
        console.print(f"in {PRESETS_DIR}: each folder's MODEL_CARD.md (or saved_models/README.md) says how it was made",
                      soft_wrap=True, highlight=False)
        return

    from mer_keras.factory import get_spec, list_models

    if model is not None:
        s = get_spec(model)  # an unknown name lists the registered ones
        rep = s.representation + "".join(f" ({k}={v})" for k, v in s.representation_options.items())
        details = [("model", s.name), ("source", s.citation), ("representation", rep),
                   ("input", "x".join(map(str, s.input_shape))),
                   ("extra losses", ", ".join(f"{out} x{w:g}" for out, (_, w) in s.aux_losses.items()) or "-"),
                   ("learning rate", f"{s.learning_rate:g}"), ("variants", ", ".join(s.variants) or "-"),
                   ("recipe project", "the defaults of `mer-keras train` at the model's learning rate"),
                   *((f"recipe {r}", f"{recipe_text(s.recipe(r))} ({v['source']})") for r, v in s.recipes.items())]
        width = max(len(k) for k, _ in details)
        for key, value in details:
            console.print(f"{key.ljust(width)}  {value}", soft_wrap=True, highlight=False)
        return
    rows = [("model", "input", "lr", "variants", "recipes", "source")]
    for name in list_models():
        s = get_spec(name)
        rows.append((name, f"{s.representation} {'x'.join(map(str, s.input_shape))}", f"{s.learning_rate:g}",
                     ", ".join(s.variants) or "-", ", ".join(["project", *s.recipes]), s.citation))
    print_rows(rows)
    console.print("details of one: mer-keras models --model NAME", highlight=False)


def print_rows(rows: list[tuple[str, ...]]) -> None:
    """Aligned columns, one line per row (never wrapped: a narrow terminal scrolls instead)."""
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    for r in rows:
        console.print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip(), soft_wrap=True, highlight=False)
