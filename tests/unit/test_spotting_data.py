"""Spotting annotations of long videos: CAS(ME)^2 and SAMM-LV sheets, frame numbers, bad rows named."""

import cv2
import numpy as np
import pytest
from openpyxl import Workbook

from mer_keras.data.spotting import load_spotting
from mer_keras.errors import DataError, MissingFileError, OptionError


def frames(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        cv2.imwrite(str(folder / name), np.full((8, 8), 100, np.uint8))


def casme_sq(root, extra_rows=()):
    wb = Workbook()
    ws = wb.active
    for row in ([1, "anger1_1", 3, 5, 8, "4+7", "negative", "micro-expression", "anger"],
                [1, "anger1_2", 20, 0, 34, "4", "negative", "macro-expression", "anger"],    # apex 0: midpoint
                [1, "happy1_1", 2, 4, 6, "12", "positive", "micro-expression", "happy"],
                [2, "anger1_1", 1, 2, 0, "4", "negative", "micro-expression", "anger"],      # offset 0: skipped
                *extra_rows):
        ws.append(row)
    for title, rows in (("naming rule1", (["s15", "15", 1], ["s16", "16", 2])),
                        ("naming rule2", ([101, "anger1"], [401, "happy1"]))):
        sheet = wb.create_sheet(title)
        for row in rows:
            sheet.append(row)
    root.mkdir(parents=True, exist_ok=True)
    wb.save(root / "CAS(ME)^2code_final(Updated).xlsx")
    for folder in ("s15/15_0101disgustingteeth", "s15/15_0401girlcrashing", "s16/16_0101disgustingteeth"):
        frames(root / "rawpic" / folder, [f"img{i}.jpg" for i in range(1, 41)])
    return root


def samm_lv(root, bad=None):
    wb = Workbook()
    ws = wb.active
    for i in range(9):
        ws.append([f"SAMM long videos, title row {i}"])
    ws.append(["Subject", "Filename", "Inducement Code", "Onset", "Apex", "Offset", "Duration", "Type",
               "Action Units", "Notes"])
    for row in ([6, "006_1_1", 1, 101, 130, 180, 80, "Macro", "12", ""],
                [6, "006_1_2", 1, 405, -1, 470, 66, "Micro - 1/2", "4", ""],           # apex -1: midpoint
                [7, "007_3_1", 3, 12, 20, 60, 49, "Micro - 1/2", "1+2", ""],
                *([bad] if bad else [])):
        ws.append(row)
    root.mkdir(parents=True, exist_ok=True)
    wb.save(root / "SAMM_LongVideos_V3_Release.xlsx")
    frames(root / "SAMM_longvideos" / "006_1", [f"006_1_{i:04d}.jpg" for i in range(1, 501)])
    frames(root / "SAMM_longvideos" / "007_3", [f"007_3_{i:04d}.jpg" for i in range(1, 101)])
    return root


def test_casme_sq_long_videos_keep_micro_and_macro_and_count_uncoded_rows(tmp_path):
    videos = load_spotting("casme_sq", casme_sq(tmp_path / "casme_sq"))
    by_name = {v.name: v for v in videos}
    anger = by_name["s15/15_0101disgustingteeth"]
    assert anger.fps == 30.0 and len(anger.frames) == 40 and anger.frames[9].endswith("img10.jpg")
    assert [(t.onset, t.apex, t.offset, t.type, t.label) for t in anger.truth] == [
        (2, 4, 7, "micro", "negative"), (19, 26, 33, "macro", "negative")]
    assert [(t.onset, t.offset) for t in by_name["s15/15_0401girlcrashing"].truth] == [(1, 5)]
    assert by_name["s16/16_0101disgustingteeth"].skipped == 1 and by_name["s16/16_0101disgustingteeth"].truth == ()
    with pytest.raises(DataError, match="is not coded"):
        load_spotting("casme_sq", tmp_path / "casme_sq", strict=True)


@pytest.mark.parametrize("row, message", [
    ([1, "anger1_3", 30, 32, 50, "4", "negative", "micro-expression", ""], "offset frame 50 has no frame file"),
    ([1, "anger1_3", 9, 3, 12, "4", "negative", "micro-expression", ""], "are not in order"),
    ([1, "anger1_3", 9, 10, 12, "4", "negative", "blink", ""], "neither micro nor macro"),
    ([1, "sad1_1", 9, 10, 12, "4", "negative", "micro-expression", ""], "video 'sad1' is not in 'naming rule2'"),
])
def test_casme_sq_bad_rows_name_the_sheet_row(tmp_path, row, message):
    root = casme_sq(tmp_path / "casme_sq", [row])
    with pytest.raises(DataError, match=message) as info:
        load_spotting("casme_sq", root)
    assert ".xlsx:5" in str(info.value)


def test_samm_long_videos_find_the_header_and_map_frame_numbers(tmp_path):
    videos = load_spotting("samm", samm_lv(tmp_path / "samm"))
    assert [v.name for v in videos] == ["006_1", "007_3"] and videos[0].fps == 200.0
    assert [(t.onset, t.apex, t.offset, t.type) for t in videos[0].truth] == [
        (100, 129, 179, "macro"), (404, 436, 469, "micro")]
    assert videos[1].subject == "007" and videos[1].truth[0].onset == 11


def test_samm_bad_rows_and_missing_folders(tmp_path):
    with pytest.raises(DataError, match="Filename '0061' is not"):
        load_spotting("samm", samm_lv(tmp_path / "a", [6, "0061", 1, 1, 2, 3, 3, "Micro", "", ""]))
    with pytest.raises(MissingFileError, match="008_2 does not exist"):
        load_spotting("samm", samm_lv(tmp_path / "b", [8, "008_2_1", 1, 1, 2, 3, 3, "Micro", "", ""]))
    with pytest.raises(OptionError, match="unknown spotting dataset"):
        load_spotting("casme2", tmp_path)
    with pytest.raises(OptionError, match="rendered, not read"):
        load_spotting("synthetic", tmp_path)
