"""Spellings that split one thing into two, and copies that put a test clip into training
(issue 31): subject and database ids differing by case or invisible characters, numbers written
two ways as labels, the same image under two subjects, files beside a clip's frames that are not
frames, images that cannot be read as the data they claim to be."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np

from tests.helpers.cases import SKIPPED, Case, _call
from tests.helpers.corrupt import _write, encode, face_frames

KIND = "spellings that split one thing into two"
HEADER = "subject,label,frames,path,onset,apex,offset,dataset"


def _image(seed: int, size: int = 32) -> bytes:
    rng = np.random.default_rng(100 + seed)
    img = cv2.GaussianBlur(rng.uniform(0, 255, (size, size, 3)).astype(np.float32), (0, 0), 1.5)
    return encode(np.clip(img, 0, 255).astype(np.uint8), ".png")


def _manifest(d: Path, name: str, rows: list[tuple[str, str, str]], labels=("positive", "negative")) -> None:
    """A manifest of distinct ready images: (subject, dataset, label or '') per row."""
    lines = [HEADER]
    for i, (subject, dataset, label) in enumerate(rows):
        lines.append(f"{subject},{label or labels[i % len(labels)]},,img/{i}.png,,,,{dataset}")
    _write(d / f"{name}.csv", "\n".join(lines) + "\n")


#: Subject spellings of one person: the second spelling of each pair is in rows 4 and 5.
SUBJECTS = {
    "subject_case": ("casme2_sub02", "CASME2_SUB02"),
    "subject_zero_width_space": ("sub02", "sub\u200b02"),
    "subject_no_break_space": ("sub 02", "sub\u00a002"),
    "subject_byte_order_mark": ("sub02", "\ufeffsub02"),
    "subject_fullwidth": ("sub02", "ｓｕｂ０２"),
}


def build(c) -> None:
    d = c / "identities"
    for i in range(12):
        _write(d / "img" / f"{i}.png", _image(i))
    for name, (a, b) in SUBJECTS.items():
        _manifest(d, name, [(a, "db", ""), ("sub01", "db", ""), (a, "db", ""), (b, "db", ""), (b, "db", ""),
                            ("sub03", "db", "")])
    _manifest(d, "subject_leading_zero", [("sub2", "db", ""), ("sub01", "db", ""), ("sub02", "db", ""),
                                           ("sub02", "db", "")])
    _manifest(d, "subject_separator", [("sub_02", "db", ""), ("sub01", "db", ""), ("sub-02", "db", ""),
                                        ("sub01", "db", "")])
    _manifest(d, "dataset_case", [("s1", "casme2", ""), ("s2", "casme2", ""), ("s1", "CASME2", ""),
                                   ("s2", "Casme2", ""), ("s3", "casme2", ""), ("s3", "casme2", "")])
    _manifest(d, "numeric_labels", [("s1", "db", "0"), ("s1", "db", "1"), ("s2", "db", "2"), ("s2", "db", "1.0"),
                                     ("s3", "db", "2.0"), ("s3", "db", "0"), ("s1", "db", "01")])
    _manifest(d, "single_class", [("s1", "db", "positive"), ("s2", "db", "positive"), ("s3", "db", "positive")])
    # the same picture under two subjects: a byte copy, and a PNG of the same pixels as a BMP
    shutil.copy(d / "img" / "0.png", d / "img" / "copy_of_0.png")
    cv2.imwrite(str(d / "img" / "same_pixels_as_1.bmp"), cv2.imread(str(d / "img" / "1.png")))
    lines = [HEADER, "s1,positive,,img/0.png,,,,db", "s1,negative,,img/1.png,,,,db", "s2,positive,,img/2.png,,,,db",
             "s2,negative,,img/3.png,,,,db", "s2,positive,,img/copy_of_0.png,,,,db",
             "s3,negative,,img/same_pixels_as_1.bmp,,,,db", "s3,positive,,img/4.png,,,,db"]
    _write(d / "copied_image.csv", "\n".join(lines) + "\n")
    # a clip folder with a copy and a converted frame beside the JPEG frames
    frames = face_frames(6)
    for i, f in enumerate(frames, start=1):
        _write(d / "clip_with_copies" / f"img{i}.jpg", encode(f, ".jpg"))
        _write(d / "clip_same_number" / f"img{i}.jpg", encode(f, ".jpg"))
        _write(d / "clip_plain" / f"img{i}.jpg", encode(f, ".jpg"))
        ok, buf = cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 80])  # other bytes: not a copied clip
        _write(d / "clip_other" / f"img{i}.jpg", buf.tobytes())
    _write(d / "clip_with_copies" / "img3 - Copy.jpg", encode(frames[2], ".jpg"))
    _write(d / "clip_with_copies" / "img4.png", encode(frames[3], ".png"))
    _write(d / "clip_same_number" / "img003.jpg", encode(frames[2], ".jpg"))
    clip_rows = ["s1,positive,clip_with_copies,,1,3,6,db", "s2,negative,clip_other,,1,3,6,db"]
    _write(d / "frame_copies.csv", "\n".join([HEADER, *clip_rows]) + "\n")
    _write(d / "frame_same_number.csv", "\n".join([HEADER, "s1,positive,clip_same_number,,1,3,6,db",
                                                    "s2,negative,clip_plain,,1,3,6,db",
                                                    "s3,positive,clip_other,,1,3,6,db"]) + "\n")
    # the same clip (a copy of its folder) under another subject
    shutil.copytree(d / "clip_plain", d / "clip_plain_copy")
    _write(d / "copied_clip.csv", "\n".join([HEADER, "s1,positive,clip_plain,,1,3,6,db",
                                             "s2,positive,clip_plain_copy,,1,3,6,db",
                                             "s2,negative,clip_other,,1,3,6,db"]) + "\n")
    # images that are not what they claim: a 40000 x 40000 PNG header, a float TIFF with NaN
    _write(d / "img" / "huge.png", _huge_png(40000, 40000))
    import tifffile

    nan = np.random.default_rng(0).uniform(0, 1, (32, 32)).astype(np.float32)
    nan[5, 5] = np.nan
    tifffile.imwrite(d / "img" / "nan.tiff", nan)
    lines = [HEADER, "s1,positive,,img/0.png,,,,db", "s2,negative,,img/1.png,,,,db", "s1,negative,,img/huge.png,,,,db",
             "s2,positive,,img/nan.tiff,,,,db"]
    _write(d / "unreadable_images.csv", "\n".join(lines) + "\n")


def _huge_png(width: int, height: int) -> bytes:
    """A PNG whose header says ``width`` x ``height`` grey pixels (a few hundred bytes on disk)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def _subjects(load_dataset, c, name):
    """load_dataset('manifest', ...): its subjects and warnings, as an error the case reads."""
    ds = load_dataset("manifest", c / f"identities/{name}.csv")
    raise ValueError(f"subjects {sorted(ds.subjects)}; databases {sorted({r.dataset for r in ds.images})}; "
                     f"classes {ds.classes}; warnings {ds.warnings}")


def cases() -> list[Case]:
    from mer_keras.errors import DataError

    prep = ["data", "prepare", "manifest", "--cache-dir", "{c}/cache", "--root"]
    out = []
    for name, (a, b) in SUBJECTS.items():
        what = name.replace("_", " ").replace("subject ", "")
        csv = f"{{c}}/identities/{name}.csv"
        out += [
            Case(f"subject ids differing by {what}", "cli", prep + [csv], 0, f"{csv}:5, {csv}:6",
                 f"read as one subject {a!r}", kind=KIND),
            Case(f"subject ids differing by {what}, --strict", "cli", prep + [csv, "--strict"], 2,
                 f"read as one subject {a!r}", "--strict: data warnings are errors", kind=KIND),
            Case(f"subject ids differing by {what}: one LOSO subject", "call",
                 _call("mer_keras.data.datasets.load_dataset", lambda f, c, n=name: _subjects(f, c, n)), ValueError,
                 f"subjects {sorted([a, 'sub01', 'sub03'])}", "differ only by case, spaces, invisible characters",
                 kind=KIND),
        ]
    out += [
        Case("subject ids differing by leading zeros", "cli", prep + ["{c}/identities/subject_leading_zero.csv"], 2,
             "subjects 'sub02' ({c}/identities/subject_leading_zero.csv:4, {c}/identities/subject_leading_zero.csv:5)"
             " and 'sub2' ({c}/identities/subject_leading_zero.csv:2)", "cannot be merged safely", kind=KIND),
        Case("subject ids differing by separators", "call",
             _call("mer_keras.data.datasets.load_dataset",
                   lambda f, c: f("manifest", c / "identities/subject_separator.csv")), DataError,
             "subjects 'sub-02' ({c}/identities/subject_separator.csv:4) and 'sub_02'", "cannot be merged safely",
             kind=KIND),
        Case("dataset column written casme2 / CASME2 / Casme2", "call",
             _call("mer_keras.data.datasets.load_dataset", lambda f, c: _subjects(f, c, "dataset_case")), ValueError,
             "databases ['casme2']", "read as one database 'casme2'", kind=KIND),
        Case("numeric labels written 1 and 1.0 (and 01)", "call",
             _call("mer_keras.data.datasets.load_dataset", lambda f, c: _subjects(f, c, "numeric_labels")), ValueError,
             "classes ['0', '1', '2']", "or number format: read as one class '1'", kind=KIND),
        Case("one class in the label column", "cli",
             ["train", "--data", "manifest", "--root", "{c}/identities/single_class.csv", "--model", "ststnet",
              "--cache-dir", "{c}/cache", "--out", "{c}/identities/runs"], 2,
             "{c}/identities/single_class.csv", "the label column holds one class ('positive', 3 usable record(s))",
             kind=KIND),
        Case("an image copied under another subject", "cli", prep + ["{c}/identities/copied_image.csv"], 0,
             "{c}/identities/copied_image.csv:6: the same image file (same bytes) as {c}/identities/copied_image.csv:2",
             "under subjects db/s1 and db/s2: leave-one-subject-out would train on a test clip", kind=KIND),
        Case("an image saved in another format under another subject", "cli",
             prep + ["{c}/identities/copied_image.csv"], 0,
             "{c}/identities/copied_image.csv:7: the same picture (same decoded pixels) as "
             "{c}/identities/copied_image.csv:3", "under subjects db/s1 and db/s3", kind=KIND),
        Case("an image copied under another subject, --strict", "cli",
             prep + ["{c}/identities/copied_image.csv", "--strict"], 2, "{c}/identities/copied_image.csv:6",
             "--strict: data warnings are errors", kind=KIND),
        Case("a clip folder copied under another subject", "cli", prep + ["{c}/identities/copied_clip.csv"], 0,
             "{c}/identities/copied_clip.csv:3: the same onset and apex frame files (same bytes)",
             "under subjects db/s1 and db/s2", kind=KIND),
        Case("a copy and a PNG beside a clip's JPEG frames", "cli", prep + ["{c}/identities/frame_copies.csv"], 0,
             "{c}/identities/clip_with_copies: 2 file(s) that do not follow the frame naming img{n}.jpg",
             "left out of the clip's frames: img3 - Copy.jpg, img4.png", kind=KIND),
        Case("a copy beside a clip's frames, --strict", "cli",
             prep + ["{c}/identities/frame_copies.csv", "--strict"], 2, "{c}/identities/clip_with_copies",
             "--strict: data warnings are errors", kind=KIND),
        Case("two frame files with one number (img3.jpg, img003.jpg)", "cli",
             prep + ["{c}/identities/frame_same_number.csv"], SKIPPED, "{c}/identities/frame_same_number.csv:2",
             "both have frame number 3", kind=KIND),
        Case("a 40000 x 40000 PNG (a few hundred bytes)", "cli", prep + ["{c}/identities/unreadable_images.csv"],
             SKIPPED, "{c}/identities/unreadable_images.csv:4", "exceeds limit", kind=KIND),
        Case("a 40000 x 40000 PNG, --strict", "cli",
             prep + ["{c}/identities/unreadable_images.csv", "--strict"], 2,
             "{c}/identities/unreadable_images.csv:4", "not a video frame or input image", kind=KIND),
        Case("a float32 TIFF with a NaN pixel", "cli", prep + ["{c}/identities/unreadable_images.csv"], SKIPPED,
             "{c}/identities/unreadable_images.csv:5", "a floating-point image with 1 NaN or infinite pixel value(s)",
             kind=KIND),
    ]
    return [Case(**{**c.__dict__, "name": f"identities: {c.name}"}) for c in out]
