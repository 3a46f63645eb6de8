"""Builders of small database trees in the official layouts, with the quirks of the real sheets.

Frames come from the synthetic generator (real bundled face photos), re-encoded as each database
stores them: CASME II colour JPEG ``img<N>.jpg``, SAMM grayscale JPEG ``<subject>_<NNNNN>.jpg``,
SMIC colour BMP ``image<NNNNNN>.bmp``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
from openpyxl import Workbook


def _frames(sample, n):
    paths = sample.frame_paths[sample.onset:sample.onset + n]
    return [cv2.imread(p, cv2.IMREAD_COLOR) for p in paths]


def _write(folder: Path, names, images, gray=False):
    folder.mkdir(parents=True, exist_ok=True)
    for name, img in zip(names, images):
        if gray:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        cv2.imwrite(str(folder / name), img)


def _xlsx(path: Path, rows):
    wb = Workbook()
    ws = wb.active
    for row in rows:
        ws.append(list(row))
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)


# (subject int, clip, first frame number, n frames, onset, apex, offset, AUs, emotion)
CASME2_ROWS = [
    (1, "EP02_01f", 46, 6, 46, 48, 51, "4+7", "disgust"),
    (1, "EP03_02", 8, 6, 8, "/", 13, "12", "happiness"),      # '/' apex; img8..img13 sorts numerically
    (2, "EP01_11f", 100, 5, 100, 102, 104, "14", "repression"),
    (2, "EP02_04f", 20, 5, 20, 21, 24, "1+2", "surprise"),
    (17, "EP05_03", 1, 4, 1, 2, 4, "4", "fear"),              # not in the 5-class set nor the composite
    (17, "EP06_01", 5, 4, 5, 6, 8, "", "others"),
    (3, "EP07_01", 1, 4, 1, 2, 4, "12", "joy"),               # bad: unknown emotion
    (3, "EP08_01", 1, 10, 1, 9, 4, "12", "happiness"),        # bad: apex outside onset..offset
    (4, "EP09_01", 1, 0, 1, 2, 4, "12", "happiness"),         # bad: no frame folder
]
CASME2_GOOD = 6


def make_casme2(root: Path, samples) -> Path:
    header = ["Subject", "Filename", None, "OnsetFrame", "ApexFrame", "OffsetFrame", None, "Action Units",
              "Estimated Emotion"]
    rows = [header]
    for k, (sub, clip, first, n, on, ap, off, aus, emo) in enumerate(CASME2_ROWS):
        if n:
            names = [f"img{first + i}.jpg" for i in range(n)]
            _write(root / "CASME2_RAW_selected" / f"sub{sub:02d}" / clip, names, _frames(samples[k % len(samples)], n))
        rows.append([sub, clip, None, on, ap, off, None, aus, emo])
    _xlsx(root / "CASME2-coding-20140508.xlsx", rows)
    return root


# (subject, clip, first frame, n, onset, apex, offset, AUs, emotion)
SAMM_ROWS = [
    (6, "006_1_2", 5562, 6, 5562, 5564, 5567, "R12 + R15", "Happiness"),   # Subject stored as a number
    ("006", "006_1_3", 100, 5, 100, -1, 104, "4+7", "Anger"),            # apex -1 = missing
    ("011", "011_2_1", 9, 5, 9, 10, 13, "12 or 14", "Others"),           # "or" in AUs; Others -> other
    ("011", "011_3_1", 50, 4, 50, 51, 53, "L14", "Contempt"),
    ("011", "011_4_1", 70, 4, 70, 71, 73, "9", "Disgust"),
]


def make_samm(root: Path, samples) -> Path:
    rows = [["SAMM Micro-Movement FACS Codes"], ["Version 2"], [],
            ["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame", "Duration",
             "Micro", "Action Units", "Notes", "Estimated Emotion", "Objective Classes"]]
    for k, (sub, clip, first, n, on, ap, off, aus, emo) in enumerate(SAMM_ROWS):
        sub_s = f"{int(sub):03d}"
        names = [f"{sub_s}_{first + i:05d}.jpg" for i in range(n)]
        _write(root / "SAMM" / sub_s / clip, names, _frames(samples[k % len(samples)], n), gray=True)
        rows.append([sub, clip, 1, on, ap, off, off - on + 1, "Micro - 1/2", aus, "", emo, 1])
    _xlsx(root / "SAMM_Micro_FACS_Codes_v2.xlsx", rows)
    return root


SMIC_CLIPS = [("s1", "negative", "s1_ne_01", 5), ("s1", "positive", "s1_po_01", 4),
              ("s2", "surprise", "s2_sur_01", 6), ("s2", "negative", "s2_ne_03", 4)]


def make_smic(root: Path, samples) -> Path:
    for k, (sub, cls, clip, n) in enumerate(SMIC_CLIPS):
        names = [f"image{1000 + i:06d}.bmp" for i in range(n)]
        _write(root / "SMIC" / "HS" / sub / "micro" / cls / clip, names, _frames(samples[k % len(samples)], n))
    return root


def make_sheet_tree(root: Path, sheet_name: str, header, rows, folder_of, samples, name_of=lambda i: f"{i}.jpg"):
    """A generic database tree: ``rows`` are (sheet row, first frame, n frames); ``folder_of(row)``
    gives the clip folder relative to ``root``; frames are named by ``name_of(number)``."""
    table = [header]
    for k, (row, first, n) in enumerate(rows):
        folder = root / folder_of(row)
        if not folder.exists():
            _write(folder, [name_of(first + i) for i in range(n)], _frames(samples[k % len(samples)], n))
        table.append(row)
    _xlsx(root / sheet_name, table)
    return root


def make_casme(root, samples):
    header = ["Subject", "Filename", None, "OnsetF", "ApexF1", "OffsetF", "Action Units", "Emotion"]
    rows = [([1, "EP01_5", None, 10, 12, 14, "4+7", "tense"], 10, 5),
            ([2, "EP03_1", None, 3, 4, 6, "9", "disgust"], 3, 4)]
    return make_sheet_tree(root, "CASME-coding-20130529.xlsx", header, rows,
                           lambda r: f"CASME_raw_selected/sub{r[0]:02d}/{r[1]}", samples, lambda i: f"img{i}.jpg")


def make_casme3(root, samples):
    header = ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "emotion", "Objective class"]
    rows = [(["spNO.1", "a", 1, 3, 5, "4+7", "disgust", 1], 1, 12),
            (["spNO.1", "a", 7, 9, 11, "12", "happy", 2], 1, 12),   # a second expression in video a
            (["spNO.2", "b", 2, 3, 4, "1+2", "surprise", 3], 2, 3)]
    return make_sheet_tree(root, "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx", header, rows,
                           lambda r: f"{r[0]}/{r[1]}/color", samples)


def make_mmew(root, samples):
    header = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion",
              "remarks"]
    rows = [(["S01", "S01_happiness_01", 1, 3, 5, "6+12", "happiness", ""], 1, 5),
            (["S02", "S02_surprise_02", 1, 2, 4, "1+2", "surprise", ""], 1, 4)]
    return make_sheet_tree(root, "MMEW_Micro_Exp.xlsx", header, rows,
                           lambda r: f"Micro_Expression/{r[6]}/{r[1]}", samples)


def make_4dme(root, samples):
    header = ["sub_ID", "fold_name", "Onset", "Apex", "Offset", "AUs", "Emotion"]
    rows = [(["S01", "S01_1", 1, 2, 4, "4(k)+7", "negative"], 1, 4),
            (["S02", "S02_3", 1, 3, 5, "12", "positive"], 1, 5),
            (["S02", "S02_4", 1, 2, 3, "12", "negative+surprise"], 1, 3)]   # several emotions: skipped
    return make_sheet_tree(root, "4DME_Labelling_Micro_release v1.xlsx", header, rows, lambda r: f"{r[0]}/{r[1]}",
                           samples)


def make_casme_sq(root, samples):
    """CAS(ME)^2: a headerless code sheet plus the two naming-rule sheets; long-video frame folders."""
    wb = Workbook()
    ws = wb.active
    ws.title = "CASFEcode_final"
    for row in ([1, "anger1_1", 3, 5, 8, "4+7", "negative", "micro-expression", "anger"],
                [1, "anger1_2", 20, 22, 24, "4", "negative", "macro-expression", "anger"],   # macro: not read
                [1, "happy1_1", 2, 4, 6, "12", "positive", "micro-expression", "happy"],
                [2, "anger1_1", 1, 2, 5, "4", "negative", "micro-expression", "anger"],
                [2, "happy1_1", 1, 2, 0, "12", "positive", "micro-expression", "happy"]):    # offset 0: skipped
        ws.append(row)
    r1 = wb.create_sheet("naming rule1")
    for row in (["s15", "15", 1], ["s16", "16", 2]):
        r1.append(row)
    r2 = wb.create_sheet("naming rule2")
    for row in ([101, "anger1"], [401, "happy1"]):
        r2.append(row)
    root.mkdir(parents=True, exist_ok=True)
    wb.save(root / "CAS(ME)^2code_final(Updated).xlsx")
    for k, (folder, name) in enumerate([("s15", "15_0101disgustingteeth"), ("s15", "15_0401girlcrashing"),
                                        ("s16", "16_0101disgustingteeth")]):
        _write(root / "rawpic" / folder / name, [f"img{i}.jpg" for i in range(1, 11)], _frames(samples[k], 10))
    return root
