"""SMIC.

X. Li, T. Pfister, X. Huang, G. Zhao, M. Pietikainen, "A Spontaneous Micro-expression Database:
Inducement, Collection and Baseline", IEEE FG 2013. Three cameras: HS (100 fps, 16 subjects,
164 clips), VIS and NIR (25 fps, 8 subjects, 71 clips each).

Layout (``root`` is the SMIC folder, or its parent)::

    SMIC/HS/s1/micro/negative/s1_ne_01/image0xxxxx.bmp ...
    SMIC/VIS/..., SMIC/NIR/...

There is no official coding sheet: records come from the folders, onset = first frame, offset =
last frame, apex unknown (apex policy: midpoint). The class is the folder name.
"""

from __future__ import annotations

import re

from mer_keras.data.database import collect, make_sample, resolve_root
from mer_keras.data.records import Dataset
from mer_keras.errors import DataError, MissingFileError, OptionError

NAME = "smic"
FPS = {"HS": 100.0, "VIS": 25.0, "NIR": 25.0}
CLASSES = ("negative", "positive", "surprise")


def load(root=None, camera: str = "HS", strict: bool = False, apex_policy: str = "midpoint") -> Dataset:
    """Read SMIC records of one camera from the folder tree.

    Raises:
        OptionError: unknown camera. MissingFileError: no root or no ``<camera>`` folder.
        DataError: with ``strict``, the first bad clip.
    """
    if camera not in FPS:
        raise OptionError(f"unknown SMIC camera {camera!r}; expected one of {tuple(FPS)}")
    root = resolve_root(root, "SMIC")
    base = root / "SMIC" if (root / "SMIC").is_dir() else root
    cam = base / camera
    if not cam.is_dir():
        raise MissingFileError(f"SMIC camera folder {cam} does not exist")
    result = Dataset(NAME)
    for subject_dir in sorted((p for p in cam.iterdir() if p.is_dir()), key=lambda p: _num(p.name)):
        micro = subject_dir / "micro"
        if not micro.is_dir():
            result.skipped.append((str(subject_dir), "no 'micro' folder"))
            continue
        for class_dir in sorted(p for p in micro.iterdir() if p.is_dir()):
            emotion = class_dir.name.lower()
            for clip_dir in sorted(p for p in class_dir.iterdir() if p.is_dir()):
                where = str(clip_dir)

                def build(clip_dir=clip_dir, emotion=emotion, where=where, subject=subject_dir.name):
                    if emotion not in CLASSES:
                        raise DataError(f"{where}: unknown class folder {emotion!r}; expected one of {CLASSES}")
                    return make_sample(NAME, subject, clip_dir.name, clip_dir, None, None, None, (), emotion,
                                       FPS[camera], where, apex_policy)

                collect(result, where, build, strict)
    return result


def _num(name: str) -> int:
    m = re.search(r"\d+", name)
    return int(m.group()) if m else 0
