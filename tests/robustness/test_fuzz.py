"""Property-based tests (hypothesis) of the parsers and the representation builders.

Every parser answers any input with records or a ``ValueError`` (``FileNotFoundError`` for a
missing path) whose message names the file and row; every builder answers any clip with a finite
output of its documented shape, dtype and range, or a ``ValueError``. No other exception type,
whatever the input: that is what lets the CLI turn every bad input into one line and exit code 2.

The examples are few and small (the whole file runs in well under a minute on 2 cores); the
strategies mix valid values with the databases' quirks and with plain garbage.
"""

from __future__ import annotations

import csv
import math
import re
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.extra import numpy as hnp
from openpyxl import Workbook

from mer_keras.data import casme2, manifest
from mer_keras.data.database import load_sheet_database
from mer_keras.data.sheets import parse_aus, parse_frame_number, read_sheet
from mer_keras.preprocess.dynamic_image import dynamic_image, scale_to_uint8_range
from mer_keras.preprocess.flow import FLOW_METHODS, encode_flow, flow_representation, optical_strain
from mer_keras.preprocess.frames import spot_apex_frames
from mer_keras.preprocess.representation import REPRESENTATIONS, RepresentationConfig, representation_from_frames

# Hypothesis keeps caches (unicode tables, constants) in .hypothesis/ of the working folder: not in the repo.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "mer_keras_hypothesis")

FUZZ = settings(deadline=None, max_examples=75, database=None, suppress_health_check=[HealthCheck.too_slow,
                                                                       HealthCheck.function_scoped_fixture])
FAST = settings(FUZZ, max_examples=200)

#: Printable text (openpyxl refuses control characters; the sheets are typed by people).
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Co", "Cn")), max_size=10)

#: Cells of a coding sheet: numbers as Excel stores them, the databases' missing codes, garbage.
CELL = st.one_of(st.none(), TEXT, st.integers(-10, 10 ** 20), st.floats(allow_nan=True, allow_infinity=True),
                 st.sampled_from(["/", "-1", "nan", "inf", "1e400", "4+7", "R12 + R15", "²", "١٢", " 3 "]))


def _no_other_error(exc: BaseException, *names: str) -> None:
    """``exc`` is a ValueError or FileNotFoundError whose message names one of ``names``."""
    assert isinstance(exc, (ValueError, FileNotFoundError)), f"{type(exc).__name__}: {exc}"
    assert any(n in str(exc) for n in names), f"message names none of {names}: {exc}"


# -- coding-sheet cells -------------------------------------------------------------------------

@FAST
@given(CELL)
def test_frame_number_cell_is_a_number_none_or_a_named_error(value):
    try:
        n = parse_frame_number(value, "sheet.xlsx:7")
    except Exception as exc:  # noqa: BLE001  (the property: nothing but a ValueError naming the row)
        _no_other_error(exc, "sheet.xlsx:7")
        assert not isinstance(exc, FileNotFoundError)
        return
    assert n is None or (isinstance(n, int) and n >= 0)
    if n is not None:
        assert math.isfinite(float(str(value).strip())) and float(str(value).strip()) == n


@FAST
@given(CELL)
def test_action_unit_cell_never_raises(value):
    aus = parse_aus(value)
    assert isinstance(aus, tuple) and len(set(aus)) == len(aus)
    assert all(re.fullmatch(r"AU\d+", a) for a in aus)


# -- sheet readers ------------------------------------------------------------------------------

def _write_table(path: Path, rows: list[list]) -> None:
    if path.suffix == ".csv":
        with open(path, "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows([["" if c is None else c for c in row] for row in rows])
    else:
        wb = Workbook()
        for row in rows:
            wb.active.append([c if not (isinstance(c, float) and not math.isfinite(c)) else str(c) for c in row])
        wb.save(path)


REQUIRED = ["Subject", "Filename", "OnsetFrame"]


@FUZZ
@given(rows=st.lists(st.lists(CELL, max_size=5), max_size=6), header_at=st.none() | st.integers(0, 6),
       suffix=st.sampled_from([".csv", ".xlsx"]), garbage=st.none() | st.binary(max_size=64))
def test_read_sheet_gives_a_table_or_a_named_error(rows, header_at, suffix, garbage):
    """Random tables (sometimes with the header row somewhere, sometimes raw bytes)."""
    if header_at is not None:
        rows.insert(min(header_at, len(rows)), list(REQUIRED))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"sheet{suffix}"
        if garbage is not None:
            path.write_bytes(garbage)
        else:
            _write_table(path, rows)
        try:
            df, header_row = read_sheet(path, REQUIRED)
        except Exception as exc:  # noqa: BLE001
            _no_other_error(exc, str(path))
            return
    assert header_row >= 1 and all(r > header_row for r in df["_row"])
    assert {c.lower() for c in REQUIRED} <= {str(c).strip().lower() for c in df.columns}


def _mostly(valid: list, other) -> st.SearchStrategy:
    """A valid value three times out of four, else anything from ``other``."""
    return st.one_of(st.sampled_from(valid), st.sampled_from(valid), st.sampled_from(valid), other)


#: Values of each column of a CASME II-like sheet: valid ones and the usual mistakes.
SHEET_VALUES = {
    "Subject": _mostly([1, "1", 1.0, "sub01"], st.sampled_from([2, "", None, "²", "x/../..", -3, 10 ** 30]) | CELL),
    "Filename": _mostly(["EP01"], st.sampled_from(["EP02", "", None, "EP01/../EP01", "nope", "a\\b"]) | TEXT),
    "OnsetFrame": _mostly([1, 2, "/", -1], st.sampled_from(["abc", None, 2.5, "inf", 99, 4]) | CELL),
    "ApexFrame": _mostly([2, 3, "/", -1], st.sampled_from(["x", None, 7, 99, 1]) | CELL),
    "OffsetFrame": _mostly([3, 4, 5, "/"], st.sampled_from(["-1", "", None, 0, 1e400, 1]) | CELL),
    "Action Units": CELL,
    "Estimated Emotion": _mostly(["happiness", "Surprise ", "others"], st.sampled_from(["joy", "", None, 3]) | TEXT),
}


def _frame_tree(root: Path) -> Path:
    """sub01/EP01 with img1..img5, sub01/EP02 with img1 only: the files are never opened by the loader."""
    frames = root / "CASME2_RAW_selected"
    for clip, n in (("EP01", 5), ("EP02", 1)):
        (frames / "sub01" / clip).mkdir(parents=True)
        for i in range(1, n + 1):
            (frames / "sub01" / clip / f"img{i}.jpg").write_bytes(b"")
    return frames


@FUZZ
@given(rows=st.lists(st.fixed_dictionaries(SHEET_VALUES), min_size=1, max_size=6), strict=st.booleans())
def test_sheet_database_gives_records_or_names_the_row(rows, strict):
    """Every data row becomes a record or a skip naming sheet:row; --strict raises naming it."""
    header = list(SHEET_VALUES)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        frames = _frame_tree(root)
        sheet = root / "CASME2-coding-20140508.xlsx"
        _write_table(sheet, [header] + [[r[c] for c in header] for r in rows])
        try:
            res = load_sheet_database(casme2.SPEC, root, frames, strict=strict)
        except Exception as exc:  # noqa: BLE001
            _no_other_error(exc, str(sheet))
            # a cell the spreadsheet reader cannot parse (e.g. 1.8e308) fails the whole sheet, by name;
            # anything else fails one row, which only --strict makes fatal, naming sheet:row
            assert "not a readable coding sheet" in str(exc) or (
                strict and re.search(re.escape(str(sheet)) + r":\d+", str(exc))), str(exc)
            return
    event(f"{len(res.samples)} records")
    rows_seen = [s.source for s in res.samples] + [w for w, _ in res.skipped]
    assert len(rows_seen) == len(set(rows_seen))
    assert all(re.fullmatch(re.escape(str(sheet)) + r":\d+", w) for w in rows_seen)
    assert not (strict and res.skipped)
    for s in res.samples:
        assert 0 <= s.onset <= s.apex <= s.offset < len(s.frame_paths) and s.emotion in casme2.EMOTIONS


# -- manifest -----------------------------------------------------------------------------------

MANIFEST_COLUMNS = ["subject", "label", "frames", "path", "onset", "apex", "offset", "dataset"]
MANIFEST_VALUES = {
    "subject": _mostly(["a", "b", "sub 1"], st.just("") | TEXT),
    "label": _mostly(["negative", "positive"], st.just("") | TEXT),
    "frames": _mostly(["clip", ""], st.sampled_from(["clip_one", "missing", "clip.avi", "../nowhere", "photo.png"])),
    "path": _mostly(["photo.png", ""], st.sampled_from(["broken.jpg", "missing.png", "clip"])),
    "onset": _mostly(["", "1", "2"], st.sampled_from(["abc", "-1", "9", "1.5", "inf"]) | TEXT),
    "apex": _mostly(["", "2", "3"], st.sampled_from(["/", "7", "1"])),
    "offset": _mostly(["", "3", "4"], st.sampled_from(["1", "1e400", "x"])),
    "dataset": st.sampled_from(["", "x"]) | TEXT,
}

#: Header rows: the usual columns in any order, or any subset of them.
MANIFEST_HEADERS = _mostly([["subject", "label", "frames", "onset", "apex", "offset"], ["subject", "label", "path"],
                            ["label", "path", "frames", "subject", "dataset"]],
                           st.lists(st.sampled_from(MANIFEST_COLUMNS), min_size=1, max_size=8, unique=True))


def _manifest_tree(root: Path) -> None:
    """Frame folders (4 frames; 1 frame), a valid PNG, a truncated JPEG and a text file named .avi."""
    import cv2

    for clip, n in (("clip", 4), ("clip_one", 1)):
        (root / clip).mkdir()
        for i in range(1, n + 1):
            (root / clip / f"f{i}.png").write_bytes(b"")  # never opened by the loader
    cv2.imwrite(str(root / "photo.png"), np.full((8, 8, 3), 90, np.uint8))
    ok, jpg = cv2.imencode(".jpg", np.full((32, 32, 3), 90, np.uint8))
    (root / "broken.jpg").write_bytes(jpg.tobytes()[: len(jpg) // 2])
    (root / "clip.avi").write_text("not a video")


@FUZZ
@given(columns=MANIFEST_HEADERS, rows=st.lists(st.fixed_dictionaries(MANIFEST_VALUES), max_size=5),
       strict=st.booleans(), garbage=_mostly([None], st.binary(max_size=48) | TEXT))
def test_manifest_gives_records_or_names_the_row(columns, rows, strict, garbage):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _manifest_tree(root)
        path = root / "m.csv"
        if garbage is None:
            with open(path, "w", newline="", encoding="utf-8") as fh:
                csv.writer(fh).writerows([columns] + [[r[c] for c in columns] for r in rows])
        elif isinstance(garbage, bytes):
            path.write_bytes(garbage)
        else:
            path.write_text(garbage, encoding="utf-8")
        try:
            clips, images = manifest.load(path, strict=strict, cache_dir=root / "cache")
        except Exception as exc:  # noqa: BLE001
            _no_other_error(exc, str(path))
            return
    event(f"{len(clips.samples)} clips, {len(images)} images")
    rows_seen = [s.source for s in clips.samples] + [i.source for i in images] + [w for w, _ in clips.skipped]
    assert len(rows_seen) == len(set(rows_seen)) and not (strict and clips.skipped)
    assert all(re.fullmatch(re.escape(str(path)) + r":\d+", w) for w in rows_seen)
    for s in clips.samples:
        assert 0 <= s.onset <= s.apex <= s.offset < len(s.frame_paths) >= 2
    assert all(Path(i.path).name == "photo.png" for i in images)  # the truncated JPEG never gets in


# -- representation builders --------------------------------------------------------------------

def _clip_arrays():
    """Arrays of any rank 1-5, small sides (0 included), uint8 / float / int / bool dtypes."""
    dtypes = st.sampled_from([np.uint8, np.float32, np.float64, np.int16, np.bool_])
    return dtypes.flatmap(lambda dt: hnp.arrays(
        dt, hnp.array_shapes(min_dims=1, max_dims=5, min_side=0, max_side=5),
        elements=None if dt in (np.uint8, np.int16, np.bool_) else st.floats(0, 255, width=32)))


def _assert_image(x: np.ndarray, shape: tuple) -> None:
    assert x.shape == shape and x.dtype == np.float32
    assert np.isfinite(x).all() and x.min() >= 0.0 and x.max() <= 255.0


@FAST
@given(_clip_arrays())
def test_dynamic_image_of_any_array(frames):
    try:
        di = dynamic_image(frames)
    except ValueError as exc:
        assert frames.ndim != 4 or frames.shape[0] < 2 or 0 in frames.shape, str(exc)
        assert str(exc)
        return
    assert frames.ndim == 4 and frames.shape[0] >= 2 and 0 not in frames.shape
    assert di.shape == frames.shape[1:] and di.dtype == np.float32 and np.isfinite(di).all()
    _assert_image(scale_to_uint8_range(di), di.shape)


@FAST
@given(st.sampled_from([np.float32, np.float64]).flatmap(lambda dt: hnp.arrays(
    dt, hnp.array_shapes(min_dims=3, max_dims=3, max_side=4), elements=st.floats(allow_nan=True, allow_infinity=True,
                                                                              width=32))))
def test_dynamic_image_refuses_non_finite_frames(frames):
    clip = np.stack([frames, frames])
    try:
        di = dynamic_image(clip)
    except ValueError as exc:
        assert not np.isfinite(clip).all() and "finite" in str(exc)
        return
    assert np.isfinite(di).all()


@FAST
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=3, max_dims=3, max_side=4),
                  elements=st.floats(-3.0000000054977558e+38, 3.0000000054977558e+38, width=32)))
def test_scale_to_uint8_range_of_any_finite_image(image):
    _assert_image(scale_to_uint8_range(image), image.shape)


def _frame(min_side=1, max_side=32, channels=(None, 1, 3, 4)):
    """One uint8 frame: (H, W) when the drawn channel count is None, else (H, W, C)."""
    return st.tuples(st.integers(min_side, max_side), st.integers(min_side, max_side), st.sampled_from(channels)).flatmap(
        lambda s: hnp.arrays(np.uint8, s[:2] if s[2] is None else s))


@st.composite
def _frame_pairs(draw):
    """Onset and apex frames, usually of one shape large enough for optical flow, sometimes not."""
    side = _mostly(list(range(12, 33)), st.integers(1, 11))
    shape = (draw(side), draw(side)) + draw(_mostly([(), (3,)], st.sampled_from([(1,), (4,), (0,)])))
    onset = draw(hnp.arrays(np.uint8, shape))
    if draw(st.integers(0, 5)):
        return onset, draw(hnp.arrays(np.uint8, shape))
    return onset, draw(_frame())


@FUZZ
@given(frames=_frame_pairs(), method=st.sampled_from(FLOW_METHODS), size=_mostly([28, 5, 1], st.integers(-2, 0)))
def test_flow_of_any_two_frames(frames, method, size):
    onset, apex = frames
    try:
        x = flow_representation(onset, apex, size=size, method=method)
    except ValueError as exc:
        assert str(exc)
        event(f"ValueError: {str(exc)[:30]}")
        return
    event("built")
    assert onset.shape[:2] == apex.shape[:2] and size >= 1
    _assert_image(x, (size, size, 3))


@FAST
@given(flow=hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=4, max_side=6),
                       elements=st.floats(-50, 50, width=32)), size=st.integers(1, 8))
def test_strain_and_encoding_of_any_flow_field(flow, size):
    try:
        strain = optical_strain(flow)
        x = encode_flow(flow, strain, size)
    except ValueError as exc:
        assert str(exc)
        return
    assert flow.ndim == 3 and flow.shape[2] == 2
    assert strain.shape == flow.shape[:2] and np.isfinite(strain).all() and (strain >= 0).all()
    _assert_image(x, (size, size, 3))


@FAST
@given(st.lists(_frame(max_side=16), max_size=4), st.integers(0, 16))
def test_apex_spotting_of_any_frames(frames, size):
    try:
        i = spot_apex_frames(frames, size=size)
    except ValueError as exc:
        assert str(exc)
        return
    assert 0 <= i < len(frames)


def _landmarks(h: int, w: int):
    """(468, 2) face-mesh-like landmarks inside an h x w image (from a seed, so a failing example
    prints short), sometimes degenerate (one point) or not finite."""
    def points(seed):
        return (np.random.default_rng(seed).random((468, 2)) * [w - 1, h - 1]).astype(np.float32)

    return _mostly([0, 1, 2], st.integers(3, 2 ** 16)).map(points) | st.sampled_from(
        [np.full((468, 2), 3.0, np.float32), np.full((468, 2), np.nan, np.float32)])


@st.composite
def _clips(draw):
    t, h, w = draw(_mostly([3, 4], st.integers(0, 5))), draw(st.integers(1, 40)), draw(st.integers(1, 40))
    frames = [draw(hnp.arrays(np.uint8, (h, w, 3))) for _ in range(t)]
    if t and not draw(st.integers(0, 3)):  # a frame of another kind: grayscale, RGBA or float
        frames[draw(st.integers(0, t - 1))] = draw(st.sampled_from([
            np.zeros((h, w), np.uint8), np.zeros((h, w, 4), np.uint8), np.zeros((h, w, 3), np.float32)]))
    idx = sorted(draw(st.lists(_mostly(list(range(t)) or [0], st.integers(-1, t)), min_size=3, max_size=3)))
    if not draw(st.integers(0, 5)):  # out of order
        draw(st.randoms()).shuffle(idx)
    return frames, idx, draw(_landmarks(h, w))


@st.composite
def _configs(draw):
    """RepresentationConfig arguments: a consistent set five times out of six, else anything (then
    construction must refuse it or build a valid config)."""
    rep = draw(st.sampled_from(REPRESENTATIONS))
    if not draw(st.integers(0, 5)):
        return draw(st.fixed_dictionaries(dict(
            representation=st.just(rep), size=st.integers(-1, 24), crop=st.integers(-1, 48),
            flow_method=st.sampled_from(("dis", "tvl1")), frames=st.integers(0, 4), channels=st.integers(0, 4),
            regions=st.sampled_from((None, "htnet", "x")))))
    regions = draw(st.sampled_from((None, "htnet"))) if rep == "flow" else None
    return dict(representation=rep, size=draw(st.sampled_from((8, 16)) if regions else st.integers(1, 24)),
                crop=draw(st.integers(12, 48)), flow_method=draw(st.sampled_from(("dis", "farneback"))),
                frames=draw(st.integers(2, 4)),
                channels=draw(st.sampled_from((1, 3))) if rep in ("apex", "sequence") else 3, regions=regions)


@settings(FUZZ, max_examples=120)
@given(clip=_clips(), kw=_configs())
def test_representation_of_any_clip(clip, kw):
    """With the landmarks given (no face detector): every representation of random clips."""
    frames, (onset, apex, offset), landmarks = clip
    try:
        cfg = RepresentationConfig(**kw)
        x = representation_from_frames(frames, onset, apex, offset, cfg, clip_id="fuzz", landmarks=landmarks)
    except ValueError as exc:
        assert str(exc)
        event(f"ValueError: {str(exc)[:40]}")
        return
    event("built")
    assert 0 <= onset <= apex <= offset < len(frames)
    _assert_image(x, cfg.input_shape)


@FAST
@given(st.dictionaries(st.sampled_from(["representation", "size", "crop", "flow_method", "frames", "channels",
                                        "regions", "extra"]),
                       st.one_of(st.none(), st.integers(-3, 300), TEXT, st.floats(allow_nan=True),
                                 st.sampled_from(REPRESENTATIONS + ("tvl1", "dis", "htnet")))))
def test_recorded_representation_config_is_parsed_or_refused(recorded):
    """metadata.json's ``preprocessing`` (what the edge runner reads): a valid config or a clear error."""
    try:
        cfg = RepresentationConfig.from_dict(dict(recorded))
    except (KeyError, TypeError, ValueError) as exc:
        assert str(exc)
        return
    assert cfg.size >= 1 and cfg.crop >= 1 and cfg.frames >= 2 and cfg.representation in REPRESENTATIONS
    assert all(d >= 1 for d in cfg.input_shape)
