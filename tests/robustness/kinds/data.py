"""Silent data problems that would change a metric: label spellings, typos, duplicated records,
mixed inputs, tiny images, a class a fold never trains on (mer_keras.data.checks)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from tests.helpers.cases import SKIPPED, Case, _call
from tests.helpers.corrupt import CASME2_HEADER, _write, _xlsx, casme2_tree, encode, face_frames

KIND = "silent data problems"
SHEET = "CASME2-coding-20140508.xlsx"
HEADER = "subject,label,frames,path,onset,apex,offset"


def _image(seed: int, size: int = 32) -> bytes:
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.uniform(0, 255, (size, size, 3)).astype(np.float32), (0, 0), 1.5)
    return encode(np.clip(img, 0, 255).astype(np.uint8), ".png")


def _images_manifest(d: Path, name: str, labels: list[tuple[str, str]], extra: list[str] = ()) -> None:
    """A manifest of distinct ready images: (subject, label) per row, then ``extra`` raw lines."""
    lines = [HEADER]
    for i, (subject, label) in enumerate(labels):
        lines.append(f"{subject},{label},,img/{i}.png,,,")
    _write(d / f"{name}.csv", "\n".join([*lines, *extra]) + "\n")


#: Manifests of labels: name -> (subject, label) rows; the variants and typos are in rows 5-6.
LABELS = {
    "case_variant": ["positive", "negative", "positive", "Positive", "POSITIVE"],
    "upper_case": ["negative", "positive", "negative", "NEGATIVE", "negative"],
    "inner_spaces": ["very positive", "negative", "very positive", "very  positive", "negative"],
    "title_case": ["surprise", "negative", "surprise", "Surprise", "negative"],
    "typo_positive": ["positive", "negative", "positive", "positive", "postive"],
    "typo_negative": ["negative", "positive", "negative", "negative", "negatve"],
    "typo_surprise": ["surprise", "positive", "surprise", "surprise", "surprize"],
    "typo_plural": ["others", "positive", "others", "others", "other"],
    "typo_punctuation": ["positive", "negative", "positive", "positive", "positive."],
}


def build(c) -> None:
    d = c / "data"
    for i in range(12):
        _write(d / "img" / f"{i}.png", _image(i))
    _write(d / "img" / "one_px.png", encode(np.full((1, 1, 3), 90, np.uint8), ".png"))
    _write(d / "img" / "four_px.png", encode(np.full((4, 4, 3), 90, np.uint8), ".png"))
    for name, labels in LABELS.items():
        _images_manifest(d, name, [(f"s{1 + k % 2}", lab) for k, lab in enumerate(labels)])
    # duplicated records
    two = [("s1", "positive"), ("s2", "negative")]
    _images_manifest(d, "duplicate_image", two, ["s1,positive,,img/0.png,,,"])
    _images_manifest(d, "duplicate_image_other_label", two, ["s1,negative,,img/0.png,,,"])
    for i, f in enumerate(face_frames(6), start=1):
        _write(d / "clip" / f"frame{i}.jpg", encode(f, ".jpg"))
    clip_rows = ["s1,positive,clip,,1,3,6", "s2,negative,clip,,2,3,6"]
    _write(d / "duplicate_clip.csv", "\n".join([HEADER, *clip_rows, "s1,positive,clip,,1,3,6"]) + "\n")
    _write(d / "duplicate_clip_other_label.csv", "\n".join([HEADER, *clip_rows, "s1,surprise,clip,,1,3,6"]) + "\n")
    _write(d / "mixed.csv", "\n".join([HEADER, *clip_rows, "s1,positive,,img/3.png,,,"]) + "\n")
    _images_manifest(d, "one_px", two, ["s2,negative,,img/one_px.png,,,"])
    _images_manifest(d, "four_px", two, ["s2,negative,,img/four_px.png,,,"])
    # a class only in the test subject s3 (fold s3 never trains on it)
    rows = [("s1", "positive"), ("s1", "negative"), ("s2", "positive"), ("s2", "negative"), ("s3", "positive"),
            ("s3", "surprise")]
    _images_manifest(d, "untrained_class", rows)
    # coding sheets with a duplicated row
    sheet_dir = d / "casme2_duplicate"
    casme2_tree(sheet_dir, [])
    _xlsx(sheet_dir / SHEET, [CASME2_HEADER, [1, "EP_good", None, 1, 3, 6, None, "12", "happiness"],
                              [1, "EP_good", None, 1, 3, 6, None, "12", "happiness"]])
    other = d / "casme2_duplicate_other_emotion"
    casme2_tree(other, [])
    _xlsx(other / SHEET, [CASME2_HEADER, [1, "EP_good", None, 1, 3, 6, None, "12", "happiness"],
                          [1, "EP_good", None, 1, 3, 6, None, "12", "disgust"]])


def _results_warn(fragment: str):
    """A check: the run under data/runs_untrained wrote results.json whose ``warnings`` hold ``fragment``."""
    def check(root: Path, outcome) -> list[str]:
        found = sorted((root / "data" / "runs_untrained").glob("*/results.json"))
        if not found:
            return ["no results.json written"]
        warnings = json.loads(found[-1].read_text()).get("warnings", [])
        return [] if any(fragment in w for w in warnings) else [f"results.json warnings lack {fragment!r}: {warnings}"]
    return check


def _classes(load_dataset, c, name):
    """load_dataset('manifest', ...) whose classes must be the unified set (else an AssertionError)."""
    ds = load_dataset("manifest", c / f"data/{name}.csv")
    raise ValueError(f"classes {ds.classes}; warnings {ds.warnings}")


def cases() -> list[Case]:
    from mer_keras.errors import DataError

    prep = ["data", "prepare", "manifest", "--cache-dir", "{c}/cache", "--root"]
    out = []
    variants = {"case_variant": ("'POSITIVE', 'Positive', 'positive'", "positive"),
                "upper_case": ("'NEGATIVE', 'negative'", "negative"),
                "inner_spaces": ("'very  positive', 'very positive'", "very positive"),
                "title_case": ("'Surprise', 'surprise'", "surprise")}
    for name, (spellings, one) in variants.items():
        csv = f"{{c}}/data/{name}.csv"
        out.append(Case(f"labels differing by case or spaces ({name.replace('_', ' ')})", "cli", prep + [csv], 0,
                        f"labels {spellings} differ only by case, spaces", f"read as one class '{one}'", kind=KIND))
        out.append(Case(f"labels differing by case or spaces ({name.replace('_', ' ')}), --strict", "cli",
                        prep + [csv, "--strict"], 2, f"labels {spellings}", "--strict: data warnings are errors",
                        kind=KIND))
        out.append(Case(f"labels differing by case or spaces ({name.replace('_', ' ')}), loaded", "call",
                        _call("mer_keras.data.datasets.load_dataset", lambda f, c, n=name: _classes(f, c, n)),
                        ValueError, f"'{one}'", "differ only by case, spaces", kind=KIND))
    typos = {"typo_positive": ("postive", "positive"), "typo_negative": ("negatve", "negative"),
             "typo_surprise": ("surprize", "surprise"), "typo_plural": ("other", "others"),
             "typo_punctuation": ("positive.", "positive")}
    for name, (typo, meant) in typos.items():
        csv = f"{{c}}/data/{name}.csv"
        out.append(Case(f"label typo '{typo}' beside '{meant}'", "cli", prep + [csv], 2, f"{{c}}/data/{name}.csv:6",
                        f"label '{typo}' (1 record(s)) looks like a typo of '{meant}'", kind=KIND))
    out += [
        Case("label typo, through train", "cli", ["train", "--data", "manifest", "--root", "{c}/data/typo_positive.csv",
                                                 "--cache-dir", "{c}/cache", "--out", "{c}/data/runs"], 2,
             "{c}/data/typo_positive.csv:6", "looks like a typo of 'positive'", kind=KIND),
        Case("label typo, library", "call",
             _call("mer_keras.data.datasets.load_dataset", lambda f, c: f("manifest", c / "data/typo_surprise.csv")),
             DataError, "{c}/data/typo_surprise.csv:6", "looks like a typo of 'surprise'", kind=KIND),
        Case("duplicated image row", "cli", prep + ["{c}/data/duplicate_image.csv"], 0,
             "{c}/data/duplicate_image.csv:4", "the same record as", kind=KIND,
             check=lambda root, o: [] if f"{root}/data/duplicate_image.csv:2; counted once" in o.output
             else ["the first row is not named"]),
        Case("duplicated image row, --strict", "cli", prep + ["{c}/data/duplicate_image.csv", "--strict"], 2,
             "{c}/data/duplicate_image.csv:4", "counted once", kind=KIND),
        Case("duplicated image row with another label", "cli", prep + ["{c}/data/duplicate_image_other_label.csv"],
             2, "{c}/data/duplicate_image_other_label.csv:4", "with another label ('negative' against 'positive')",
             kind=KIND),
        Case("duplicated clip row", "cli", prep + ["{c}/data/duplicate_clip.csv"], 0, "{c}/data/duplicate_clip.csv:4",
             "counted once", kind=KIND),
        Case("duplicated clip row with another label", "cli", prep + ["{c}/data/duplicate_clip_other_label.csv"], 2,
             "{c}/data/duplicate_clip_other_label.csv:4", "with another label", kind=KIND),
        Case("duplicated coding-sheet row", "cli", ["data", "prepare", "casme2", "--cache-dir", "{c}/cache", "--root",
                                                   "{c}/data/casme2_duplicate"], 0,
             f"{{c}}/data/casme2_duplicate/{SHEET}:3", "counted once", kind=KIND),
        Case("duplicated coding-sheet row, --strict", "cli",
             ["data", "prepare", "casme2", "--cache-dir", "{c}/cache", "--root", "{c}/data/casme2_duplicate",
              "--strict"], 2, f"{{c}}/data/casme2_duplicate/{SHEET}:3", "counted once", kind=KIND),
        Case("duplicated coding-sheet row with another emotion", "cli",
             ["data", "prepare", "casme2", "--cache-dir", "{c}/cache", "--root",
              "{c}/data/casme2_duplicate_other_emotion"], 2, f"{{c}}/data/casme2_duplicate_other_emotion/{SHEET}:3",
             "with another label", kind=KIND),
        Case("ready images mixed with clips in one manifest", "cli", prep + ["{c}/data/mixed.csv"], 0,
             "{c}/data/mixed.csv", "mixes ready-image rows", kind=KIND),
        Case("ready images mixed with clips, --strict", "cli", prep + ["{c}/data/mixed.csv", "--strict"], 2,
             "{c}/data/mixed.csv", "make sure the images are that representation", kind=KIND),
        Case("ready images mixed with clips, through train --strict", "cli",
             ["train", "--data", "manifest", "--root", "{c}/data/mixed.csv", "--strict", "--cache-dir", "{c}/cache",
              "--out", "{c}/data/runs"], 2, "{c}/data/mixed.csv", "the images are fed as they are", kind=KIND),
        Case("1 x 1 px ready image", "cli", prep + ["{c}/data/one_px.csv"], SKIPPED, "{c}/data/one_px.csv:4",
             "is 1 x 1 px", kind=KIND),
        Case("1 x 1 px ready image, --strict", "cli", prep + ["{c}/data/one_px.csv", "--strict"], 2,
             "{c}/data/one_px.csv:4", "at least 8 px a side", kind=KIND),
        Case("4 x 4 px ready image, --strict", "cli", prep + ["{c}/data/four_px.csv", "--strict"], 2,
             "{c}/data/four_px.csv:4", "is 4 x 4 px", kind=KIND),
        Case("class only in the test subject, --strict", "cli",
             ["train", "--data", "manifest", "--root", "{c}/data/untrained_class.csv", "--model", "ststnet",
              "--epochs", "1", "--no-export", "--strict", "--cache-dir", "{c}/cache", "--out", "{c}/data/runs"], 2,
             "fold manifest/s3", "class 'surprise' has no training record", kind=KIND),
        Case("class only in the test subject", "cli",
             ["train", "--data", "manifest", "--root", "{c}/data/untrained_class.csv", "--model", "ststnet",
              "--epochs", "1", "--folds", "manifest/s3", "--no-final", "--no-export", "--cache-dir", "{c}/cache",
              "--out", "{c}/data/runs_untrained"], 0,
             "fold manifest/s3", "class 'surprise' has no training record", kind=KIND,
             check=_results_warn("fold manifest/s3: class 'surprise' has no training record")),
    ]
    return out
