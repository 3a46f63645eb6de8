import hashlib
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from mer_keras.data.synthetic import (
    AU_MOTION,
    CLASSES,
    SyntheticConfig,
    bundled_face_photos,
    load_samples,
    make_subjects,
    render_clip,
    synthetic_dataset,
)
from mer_keras.facs import AU_COMBINATIONS, AU_VOCABULARY
from mer_keras.preprocess.cache import default_cache_dir
from mer_keras.preprocess.face import FaceMeshLandmarker


def _digest(paths):
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).read_bytes())
    return h.hexdigest()


def test_deterministic_by_seed_and_cached(tiny_synthetic, tmp_path):
    root, samples = tiny_synthetic
    assert len(samples) == 12 and {s.subject for s in samples} == {"sub01", "sub02", "sub03"}
    small = SyntheticConfig(subjects=2, clips_per_subject=1, seed=7)  # a few clips: the same generator, faster
    root1, samples1 = synthetic_dataset(small, cache_dir=tmp_path / "a")
    root2, samples2 = synthetic_dataset(small, cache_dir=tmp_path / "b")
    assert root2 != root1  # generated afresh in another cache ...
    assert _digest(samples1[0].frame_paths) == _digest(samples2[0].frame_paths)  # ... with identical bytes
    assert _digest(samples1[-1].frame_paths) == _digest(samples2[-1].frame_paths)
    mtime = (root / "coding.csv").stat().st_mtime_ns
    synthetic_dataset(SyntheticConfig(subjects=3, clips_per_subject=4, seed=7), cache_dir=root.parent.parent)
    assert (root / "coding.csv").stat().st_mtime_ns == mtime  # reused, not regenerated
    root3, samples3 = synthetic_dataset(SyntheticConfig(subjects=2, clips_per_subject=1, seed=8), cache_dir=tmp_path)
    assert _digest(samples3[0].frame_paths) != _digest(samples1[0].frame_paths)


def test_coding_sheet_is_consistent(tiny_synthetic):
    root, samples = tiny_synthetic
    sheet = pd.read_csv(root / "coding.csv")
    assert list(sheet.columns[:7]) == ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame",
                                       "Action Units", "Estimated Emotion"]
    for s in samples:
        assert s.label in CLASSES
        assert s.aus in AU_COMBINATIONS[s.label]
        assert 0 <= s.onset < s.apex < s.offset < len(s.frame_paths)
        duration = (s.offset - s.onset + 1) / s.fps
        assert duration < 0.5  # micro-expressions last under half a second
    assert load_samples(root) == samples


def test_motion_is_small_and_where_the_au_is():
    photos = bundled_face_photos()
    lm = FaceMeshLandmarker()
    subject = make_subjects(photos, 1, 192, seed=3, landmarker=lm)[0]
    cfg = SyntheticConfig(blink_probability=0.0, distractor_probability=0.0, noise_sigma=(0.0, 0.0),
                          jitter=0.0, drift=0.0, roll_jitter=0.0, flicker=0.0)
    face = subject.landmarks
    upper = face[[105, 334, 66, 296]].mean(0)  # brows
    lower = face[[61, 291, 17, 0]].mean(0)     # mouth
    found = set()
    for k in range(40):
        frames, info = render_clip(subject, cfg, np.random.default_rng(k))
        if info["label"] not in {"surprise", "positive"} or info["label"] in found or "AU26" in info["aus"]:
            continue  # (AU26, jaw drop, moves the mouth in some surprise clips)
        found.add(info["label"])
        diff = np.abs(frames[info["apex"]].astype(float) - frames[info["onset"]].astype(float)).mean(2)
        diff = cv2.GaussianBlur(diff, (0, 0), 3)

        def around(p):
            x, y = int(p[0]), int(p[1])
            return diff[y - 10:y + 10, x - 25:x + 25].mean()

        if info["label"] == "surprise":  # brows move, mouth mostly still
            assert around(upper) > 1.5 * around(lower), (around(upper), around(lower))
        else:  # smile: mouth corners move more than the brows
            assert around(lower) > 1.5 * around(upper), (around(upper), around(lower))
        assert info["amplitude_iod"] < 0.1
        if found == {"surprise", "positive"}:
            break
    assert found == {"surprise", "positive"}


def test_every_class_prototype_is_rendered_and_predicted():
    """The emotion <-> AU table covers the generator's classes, and each of its AUs has a motion to
    render and an output of the AU heads to learn it."""
    assert tuple(AU_COMBINATIONS) == CLASSES
    aus = {au for combos in AU_COMBINATIONS.values() for combo in combos for au in combo}
    assert aus <= set(AU_MOTION) and aus <= set(AU_VOCABULARY)


def test_cache_dir_is_argument_then_environment_then_home(monkeypatch, tmp_path):
    monkeypatch.setenv("MER_CACHE_DIR", str(tmp_path / "env"))
    assert default_cache_dir(tmp_path / "arg") == tmp_path / "arg"
    assert default_cache_dir() == tmp_path / "env"
    monkeypatch.delenv("MER_CACHE_DIR")
    assert default_cache_dir() == Path.home() / ".cache" / "mer_keras"


def test_default_has_ten_or_more_subjects():
    assert SyntheticConfig().subjects >= 10
    assert len(bundled_face_photos()) == 2


def test_mirroring_alternates_within_each_photo(tiny_synthetic):
    import json

    root, _ = tiny_synthetic
    subjects = json.loads((root / "subjects.json").read_text())["subjects"]
    # 3 subjects over 2 photos: sub01 and sub03 come from the same photo; only the second of them is mirrored
    assert [s["photo"] for s in subjects] == ["grace_hopper", "astronaut", "grace_hopper"]
    assert [s["mirror"] for s in subjects] == [False, False, True]


def test_bad_coding_sheet_names_sheet_and_row(tiny_synthetic, tmp_path):
    import shutil

    import pytest

    root, _ = tiny_synthetic
    copy = tmp_path / "set"
    shutil.copytree(root, copy)
    sheet = pd.read_csv(copy / "coding.csv", dtype=str)
    sheet.loc[2, "Estimated Emotion"] = "happiness"
    sheet.to_csv(copy / "coding.csv", index=False)
    with pytest.raises(ValueError, match=r"coding.csv:4: unknown emotion 'happiness'"):
        load_samples(copy)
    sheet.loc[2, "Estimated Emotion"] = "negative"
    sheet.loc[1, "ApexFrame"] = "/"
    sheet.to_csv(copy / "coding.csv", index=False)
    with pytest.raises(ValueError, match=r"coding.csv:3: frame numbers must be integers"):
        load_samples(copy)
    sheet.drop(columns=["OnsetFrame"]).to_csv(copy / "coding.csv", index=False)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['OnsetFrame'\]"):
        load_samples(copy)


def test_macro_expressions_are_the_same_aus_larger_and_longer():
    """``--synthetic-expression macro`` (pretraining): about 4x the apex motion, 0.5-1.5 s (issue 19)."""
    import pytest

    from mer_keras.data.synthetic.config import MACRO_EXPRESSION

    micro, macro = SyntheticConfig.for_expression("micro"), SyntheticConfig.for_expression("macro", subjects=3)
    assert micro == SyntheticConfig() and macro.subjects == 3 and macro.amplitude == MACRO_EXPRESSION["amplitude"]
    with pytest.raises(ValueError, match="unknown synthetic expression"):
        SyntheticConfig.for_expression("mega")
    photos = bundled_face_photos()
    subject = make_subjects(photos, 1, 192, seed=3, landmarker=FaceMeshLandmarker())[0]
    for cfg, (lo, hi), (d_lo, d_hi) in ((micro, micro.amplitude, micro.duration),
                                        (macro, macro.amplitude, macro.duration)):
        for k in range(3):
            frames, info = render_clip(subject, cfg, np.random.default_rng(k))
            assert lo <= info["amplitude_iod"] <= hi
            assert d_lo * cfg.fps - 2 <= info["offset"] - info["onset"] <= d_hi * cfg.fps + 2
            assert set(info["aus"]) <= set(AU_VOCABULARY)
    assert macro.amplitude[0] > 1.5 * micro.amplitude[1] and macro.duration[0] > micro.duration[1]


@pytest.mark.slow
def test_subjects_filmed_as_the_composite_databases(tmp_path):
    """capture='databases': subject i at the frame rate of CAPTURE_PROFILES[i % 3] (its clips longer
    at 200 fps), SAMM's subject in grayscale (three equal channels), the others in colour; the
    same seed renders the same faces and expressions; the default's cache key is the one it had
    before the option existed."""
    from dataclasses import asdict

    from mer_keras.data.synthetic.config import CAPTURE_PROFILES
    from mer_keras.data.synthetic.dataset import grayscale

    cfg = SyntheticConfig(subjects=3, clips_per_subject=1, seed=7, capture="databases")
    _, samples = synthetic_dataset(cfg, cache_dir=tmp_path)
    assert [s.fps for s in samples] == [fps for _, fps, _ in CAPTURE_PROFILES] == [200.0, 200.0, 100.0]
    frames = [cv2.imread(s.frame_paths[s.apex]) for s in samples]
    assert not np.array_equal(frames[0][..., 0], frames[0][..., 1])  # colour
    assert np.array_equal(frames[1][..., 0], frames[1][..., 1]) and np.array_equal(frames[1][..., 1], frames[1][..., 2])
    assert not np.array_equal(frames[2][..., 0], frames[2][..., 2])
    _, single = synthetic_dataset(SyntheticConfig(subjects=3, clips_per_subject=1, seed=7), cache_dir=tmp_path)
    assert single[0].label == samples[0].label and len(samples[0].frame_paths) > len(single[0].frame_paths)
    assert {s.fps for s in single} == {100.0}
    assert "capture" not in SyntheticConfig().key() and SyntheticConfig().key() == \
        {k: v for k, v in asdict(SyntheticConfig()).items() if k != "capture"}
    pixel = np.array([[[200, 100, 50]]], np.uint8)
    assert grayscale(pixel).tolist() == [[[cv2.cvtColor(pixel, cv2.COLOR_RGB2GRAY)[0, 0]] * 3]]
