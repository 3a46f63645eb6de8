"""Copy a finished run's final model and its evidence into ``saved_models/<name>/``.

Copies the final model (model.keras, model_fp32.tflite, model_int8.tflite, export_report.json,
metadata.json), the LOSO results that stand behind it (results.json, config.json,
confusion_matrix.png, and selection.json of a tune run), after checking every file against the
sha256 that metadata.json records. It never copies predictions.csv, fold files or anything else
that lists the clips of a licensed database clip by clip. Local paths (the data root, member run
folders) are replaced by placeholders. Prints the folder's size.

    python tools/release_model.py RUN saved_models/ststnet_megc2019_composite

With ``--weights-fp16`` it releases initial weights for ``--init-from`` instead of a model to run:
``weights_fp16.h5`` (the final model's weights as float16, Keras HDF5 layout) and metadata.json
listing only that file, no TFLite files and no model.keras (half the bytes).

    python tools/release_model.py --weights-fp16 RUN saved_models/micro_attention_synthetic_macro
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

from mer_keras.runs import WEIGHTS_FILE

MODEL_FILES = ("model.keras", "model_fp32.tflite", "model_int8.tflite", "export_report.json", "metadata.json")
EVIDENCE = ("results.json", "config.json", "confusion_matrix.png", "selection.json")


def scrub(obj, paths: dict[str, str]):
    """``obj`` with every string that starts with one of ``paths`` replaced by its placeholder."""
    if isinstance(obj, dict):
        return {k: scrub(v, paths) for k, v in obj.items()}
    if isinstance(obj, list):
        return [scrub(v, paths) for v in obj]
    if isinstance(obj, str):
        for prefix, placeholder in paths.items():
            if prefix and (obj == prefix or obj.startswith(prefix.rstrip("/") + "/")):
                return placeholder + obj[len(prefix):]
    return obj


def write_weights(model_path: Path, dest: Path) -> dict:
    """Write the float16 weights of ``model_path`` to ``dest``; its metadata.json ``files`` entry."""
    from mer_keras.models.io import load_model
    from mer_keras.train.transfer import save_weights_fp16

    n = save_weights_fp16(load_model(model_path), dest)
    return {"format": "keras_h5_weights_fp16", "weights": n, "bytes": dest.stat().st_size,
            "sha256": hashlib.sha256(dest.read_bytes()).hexdigest()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="a complete run folder (metadata.json present)")
    ap.add_argument("dest", type=Path, help="the release folder (created; must not exist)")
    ap.add_argument("--weights-fp16", action="store_true",
                    help="release weights_fp16.h5 (initial weights for --init-from) instead of the model files")
    args = ap.parse_args(argv)
    meta_path = args.run / "metadata.json"
    if not meta_path.is_file():
        sys.exit(f"{args.run}: no metadata.json (not a complete run)")
    if args.dest.exists():
        sys.exit(f"{args.dest} exists: remove it first")
    meta = json.loads(meta_path.read_text())
    for name, info in meta.get("files", {}).items():
        if not (args.run / name).is_file():
            sys.exit(f"{args.run / name}: listed in metadata.json but missing")
        digest = hashlib.sha256((args.run / name).read_bytes()).hexdigest()
        if digest != info["sha256"]:
            sys.exit(f"{args.run / name}: sha256 {digest} differs from metadata.json's {info['sha256']}")
    config = json.loads((args.run / "config.json").read_text())
    paths = {str(config.get("root") or ""): "<data root>", str(args.run.parent.resolve()): "<runs>",
             str(args.run.parent): "<runs>", str(Path(config.get("root") or "/nonexistent").resolve()): "<data root>"}
    for member in config.get("ensemble_of", []):  # an ensemble's member runs may live elsewhere
        paths.setdefault(str(Path(member).parent), "<runs>")
    tmp = args.dest.with_name(args.dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    files = MODEL_FILES + EVIDENCE
    if args.weights_fp16:
        files = ("metadata.json", *EVIDENCE)
        meta["files"] = {WEIGHTS_FILE: write_weights(args.run / "model.keras", tmp / WEIGHTS_FILE)}
    for name in files:
        src = args.run / name
        if not src.is_file():
            continue
        if name == "metadata.json":
            (tmp / name).write_text(json.dumps(scrub(meta, paths), indent=1) + "\n")
        elif src.suffix == ".json":
            (tmp / name).write_text(json.dumps(scrub(json.loads(src.read_text()), paths), indent=1) + "\n")
        else:
            shutil.copyfile(src, tmp / name)
    tmp.rename(args.dest)
    size = sum(p.stat().st_size for p in args.dest.iterdir())
    print(f"{args.dest}: {len(list(args.dest.iterdir()))} files, {size / 1e3:.1f} kB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
