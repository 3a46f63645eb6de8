"""4DME (2D frames).

X. Li, S. Cheng, Y. Li, M. Behzad, J. Shen, S. Zafeiriou, M. Pantic, G. Zhao, "4DME: A
Spontaneous 4D Micro-Expression Dataset With Multimodalities", IEEE Transactions on Affective
Computing 14(4) 2023. 60 fps, 41 subjects, 267 micro-expressions.

Layout (``root`` holds these; the 2D grey-scale frames)::

    4DME_Labelling_Micro_release v1.xlsx    sub_ID | fold_name | Onset | Apex | Offset | AUs | Emotion ...
    <sub_ID>/<fold_name>/<n>.jpg ...

Emotions as coded (positive, negative, surprise, repression, others); cells naming several
emotions are skipped with their row. AUs marked "(k)" (key AU) are kept.
"""

from __future__ import annotations

from mer_keras.data.database import SheetSpec, load_sheet_database, resolve_root
from mer_keras.data.records import Dataset

EMOTIONS = ("positive", "negative", "surprise", "repression", "others")
CLASSES = EMOTIONS
SPEC = SheetSpec(
    name="4dme", fps=60.0, sheet_pattern="4DME_Labelling_Micro*.xls*",
    columns={"subject": "sub_ID", "clip": "fold_name", "onset": "Onset", "apex": "Apex", "offset": "Offset",
             "aus": "AUs", "emotion": "Emotion"},
    frame_dir="{subject}/{clip}", emotions=EMOTIONS)


def load(root=None, strict: bool = False, apex_policy: str = "midpoint") -> Dataset:
    """Read 4DME micro-expression records.

    Raises:
        MissingFileError: no root or sheet. DataError: header or (strict) clip errors.
    """
    root = resolve_root(root, "4DME")
    return load_sheet_database(SPEC, root, root, strict, apex_policy)
