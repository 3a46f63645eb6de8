"""CAS(ME)^3, Part A (micro-expressions with frame indices).

J. Li, Z. Dong, S. Lu, S.-J. Wang, W.-J. Yan, Y. Ma, Y. Liu, C. Huang, X. Fu, "CAS(ME)^3: A Third
Generation Facial Spontaneous Micro-Expression Database with Depth Information and High
Ecological Validity", IEEE TPAMI 45(3) 2023. 30 fps colour (plus depth), Part A: 860 micro-expressions.

Layout (``root`` holds the sheet and the frames; the frame layout differs between releases, so
it is a template, ``frame_template``, default ``{subject}/{clip}/color``)::

    cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx   Subject | Filename | Onset | Apex | Offset | AU | emotion |
                                                Objective class
    spNO.1/a/color/1.jpg ...

Several expressions come from one video (same Subject and Filename): their clip ids get the onset
frame appended (``a``, ``a_1234``, ...). The 7 emotions are kept as written (lower-cased).
"""

from __future__ import annotations

import dataclasses

from mer_keras.data.database import SheetSpec, load_sheet_database, resolve_root
from mer_keras.data.records import Dataset

EMOTIONS = ("happy", "disgust", "fear", "anger", "sad", "surprise", "others")
CLASSES = EMOTIONS
SPEC = SheetSpec(
    name="casme3", fps=30.0, sheet_pattern="cas(me)3_part_A_ME_label*.xls*",
    columns={"subject": "Subject", "clip": "Filename", "onset": "Onset", "apex": "Apex", "offset": "Offset",
             "aus": "AU", "emotion": "emotion"},
    frame_dir="{subject}/{clip}/color", emotions=EMOTIONS)


def load(root=None, frame_template: str = SPEC.frame_dir, strict: bool = False,
         apex_policy: str = "midpoint") -> Dataset:
    """Read CAS(ME)^3 Part A records; ``frame_template`` places a clip's frames under ``root``.

    Raises:
        MissingFileError: no root or sheet. DataError: header or (strict) clip errors.
    """
    root = resolve_root(root, "CASME3")
    return load_sheet_database(dataclasses.replace(SPEC, frame_dir=frame_template), root, root, strict, apex_policy)
