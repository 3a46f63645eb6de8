"""Released models by name: the folders of ``mer_keras/saved_models/`` (``saved_models/`` in a checkout),
shipped inside the package, so ``pip install mer-keras`` carries them.

A preset is named by its folder (``ststnet_megc2019_composite``), wherever a model is taken:
``mer-keras predict | evaluate | explain``, ``--init-from``, ``python -m edge.run --model`` (its int8
TFLite file), and the API (``mer_keras.load_model``, ``mer_keras.predict``). A path that exists is
always a path: a preset name is looked up only when nothing is there. Light: no TensorFlow.
"""

from __future__ import annotations

import json
from pathlib import Path

#: Where the released folders live (inside the package; ``saved_models`` at a checkout's root links here).
PRESETS_DIR = Path(__file__).resolve().parent / "saved_models"


def preset_names() -> list[str]:
    """The released folders (each holds a ``metadata.json``), sorted."""
    if not PRESETS_DIR.is_dir():
        return []
    return sorted(p.name for p in PRESETS_DIR.iterdir() if (p / "metadata.json").is_file())


def resolve(target: str | Path) -> Path:
    """``target`` as a path: itself when something is there (or it looks like a path), else the
    folder of the preset it names.

    Args:
        target: a file, a folder, or a preset name (``ststnet_megc2019_composite``).
    Returns:
        The path to use; a name that is neither a path nor a preset comes back as it is, for the
        caller's own "no model at ..." message (:func:`unknown_note` adds the presets to it).
    """
    p = Path(target)
    if p.exists() or p.is_symlink() or len(p.parts) != 1:
        return p
    folder = PRESETS_DIR / p.name
    return folder if (folder / "metadata.json").is_file() else p


def unknown_note(target: str | Path) -> str:
    """What to add to a "no model at ..." message for a bare name: the presets there are."""
    names = preset_names()
    if len(Path(target).parts) != 1 or not names:
        return ""
    return f" (not a path, nor a preset; presets: {', '.join(names)})"


def describe(name: str) -> dict:
    """One preset in a line: {"name", "model", "dataset", "classes", "uf1" (LOSO, or None), "files",
    "kilobytes", "card"} from its metadata.json, results.json and MODEL_CARD.md.

    Raises:
        KeyError: ``name`` is not a preset.
    """
    folder = PRESETS_DIR / name
    if not (folder / "metadata.json").is_file():
        raise KeyError(f"no preset {name!r}; presets: {', '.join(preset_names())}")
    meta = json.loads((folder / "metadata.json").read_text())
    results = folder / "results.json"
    uf1 = json.loads(results.read_text()).get("overall", {}).get("uf1") if results.is_file() else None
    card = folder / "MODEL_CARD.md"
    return {"name": name, "model": meta.get("model"), "dataset": meta.get("dataset"),
            "classes": meta.get("classes"), "uf1": uf1, "files": sorted(meta.get("files", {})),
            "kilobytes": round(sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) / 1e3),
            "card": str(card) if card.is_file() else None, "folder": str(folder)}
