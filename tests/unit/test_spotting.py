"""The spotter: its motion signal, its peak picking, and whole long videos with known intervals."""

import cv2
import numpy as np
import pytest

from mer_keras.runtime.intervals import random_baseline, score_videos
from mer_keras.runtime.spotting import (
    MotionSignal,
    SpotConfig,
    Spotter,
    face_masks,
    find_intervals,
    robust_threshold,
    spot_frames,
)


def texture(size=128, seed=0):
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.uniform(0, 255, (size, size)).astype(np.float32), (0, 0), 2.0)
    return cv2.normalize(img, None, 20, 235, cv2.NORM_MINMAX)


def warp(img, dx, dy, angle=0.0, local=0.0, centre=(64, 96), radius=14.0):
    """Rigid motion (translation, roll) of the whole face plus a local bump of ``local`` px (a mouth movement)."""
    h, w = img.shape
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    bump = local * np.exp(-((gx - centre[0]) ** 2 + (gy - centre[1]) ** 2) / (2 * radius ** 2))
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    m[:, 2] += (dx, dy)
    inv = cv2.invertAffineTransform(m)
    mx = inv[0, 0] * gx + inv[0, 1] * gy + inv[0, 2] - bump
    my = inv[1, 0] * gx + inv[1, 1] * gy + inv[1, 2]
    return cv2.remap(img, mx.astype(np.float32), my.astype(np.float32), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REFLECT).astype(np.uint8)


def test_local_motion_raises_the_signal_and_rigid_head_motion_does_not():
    base, k, n = texture(), 12, 120
    t = np.arange(n)
    local = 3.0 * np.sin(np.pi * np.clip((t - 60) / 20, 0, 1)) ** 2          # a 3 px bump over frames 60..80
    head = np.minimum(t, 40) * 0.1                                          # head drifts 4 px, then stops
    frames = [warp(base, head[i], 0.5 * head[i], angle=0.05 * head[i], local=local[i]) for i in range(n)]
    m = MotionSignal(SpotConfig(), k)
    signal = np.full(n, np.nan)
    for i, f in enumerate(frames):
        v = m.push(f)
        if v is not None:
            signal[i - k] = v
    assert np.isnan(signal[:k]).all() and np.isnan(signal[-k:]).all()   # needs k frames on each side
    still_or_drifting = np.nanmax(signal[k:50])
    # DIS at the spotter's preset sees about half of a local 3 px movement; the rigid drift leaves little
    assert np.nanmax(signal[62:78]) > 0.4 and np.nanmax(signal[62:78]) > 5 * still_or_drifting
    assert 62 <= int(np.nanargmax(signal)) <= 78                         # the peak is the apex (frame 70)


def test_masks_leave_out_the_eyes_and_the_background():
    pixels, cells = face_masks(128, 32)
    assert not pixels[0, 0] and not pixels[46, 41] and not pixels[46, 87]   # corner, both eye centres
    assert pixels[96, 64] and pixels[33, 40] and pixels[60, 64]           # mouth, brow, nose
    assert cells.sum() > 400


def test_find_intervals_apex_edges_and_merging():
    s = np.zeros(200)
    s[20:41] = np.hanning(21) * 10          # peak 10 at 30
    s[100:111] = np.hanning(11) * 4         # peak 4 at 105
    s[150:160], s[158:170] = 5, 6           # two runs whose extents touch: one interval, apex in the taller
    runs = find_intervals(s, 0, 200, baseline=0.0, threshold=2.0, edge=0.2)
    assert [r[1] for r in runs] == [30, 105, 158]
    on, apex, off, score = runs[0]
    assert s[on] > 2.0 * 0 + 0.2 * 10 >= s[on - 1] and s[off] > 2.0 >= s[off + 1] and score == 5.0
    assert runs[2][0] == 150 and runs[2][2] == 169
    s[25] = np.nan                           # a gap in the signal splits the run and stops the onset's search
    assert [(r[0], r[1]) for r in find_intervals(s, 0, 200, 0.0, 2.0, 0.2)][:2] == [(22, 24), (26, 30)]
    assert find_intervals(s, 110, 200, 0.0, 2.0, 0.2)[0][:2] == (150, 158)   # nothing before start


def test_robust_threshold_ignores_nan_and_resists_outliers():
    v = np.concatenate([np.full(10, np.nan), np.random.default_rng(0).normal(1.0, 0.1, 1000), [50.0] * 20])
    median, threshold = robust_threshold(v, 4.0)
    assert median == pytest.approx(1.0, abs=0.02) and threshold == pytest.approx(1.4, abs=0.05)
    assert robust_threshold(np.full(5, np.nan), 4.0) == (0.0, float("inf"))


def test_config_refuses_nonsense():
    for bad in ({"micro_k": 0}, {"macro_k": 0.2}, {"grid": 30}, {"edge": 1.5}, {"z": float("nan")}):
        with pytest.raises(ValueError):
            SpotConfig(**bad)
    with pytest.raises(ValueError, match="frame rate"):
        Spotter(0.0)


def read(video):
    return [cv2.cvtColor(cv2.imread(p), cv2.COLOR_BGR2RGB) for p in video.frames]


def test_a_long_video_is_rendered_with_its_ground_truth(long_videos):
    busy, quiet, cache = long_videos
    assert len(busy.frames) == 300 and busy.fps == 30.0
    kinds = [t.type for t in busy.truth]
    assert 3 <= kinds.count("micro") <= 5 and 1 <= kinds.count("macro") <= 3
    assert all(t.frames <= 0.5 * 30 for t in busy.truth if t.type == "micro")
    assert all(t.frames > 0.5 * 30 for t in busy.truth if t.type == "macro")
    gaps = [b.onset - a.offset for a, b in zip(busy.truth, busy.truth[1:])]
    assert min(gaps) >= 0.6 * 30 and busy.truth[0].onset >= 30 and busy.truth[-1].offset < 270
    assert quiet.truth == ()
    assert (cache / "synthetic_long").is_dir()


def test_the_spotter_finds_the_expressions_far_above_chance(long_videos):
    busy, _, _ = long_videos
    found, spotter = spot_frames(read(busy), busy.fps)
    assert all(0 <= i.onset <= i.apex <= i.offset < len(busy.frames) for i in found)
    scores = score_videos([(found, busy.truth)])
    chance = random_baseline([(found, busy.truth, len(busy.frames))], draws=100)
    assert scores["overall"]["tp"] >= 2, (found, busy.truth)
    assert scores["overall"]["f1"] > chance["overall"]["f1_p95"]
    assert len(spotter.signals["micro"]) == len(busy.frames)


def test_a_face_that_only_blinks_moves_and_changes_light_gives_almost_nothing(long_videos):
    _, quiet, _ = long_videos
    found, _ = spot_frames(read(quiet), quiet.fps)
    assert len(found) <= 1, found


def test_two_threads_give_the_same_intervals_as_one(long_videos):
    busy, _, _ = long_videos
    frames = read(busy)[:200]
    one, _ = spot_frames(frames, busy.fps)
    spotter = Spotter(busy.fps, workers=2)
    two = [i for f in frames for i in spotter.push(f)] + spotter.finish()
    assert sorted(two, key=lambda i: i.onset) == one


def test_no_face_ends_a_segment_and_nothing_spans_the_gap(long_videos):
    busy, _, _ = long_videos
    frames = read(busy)
    blank = np.full_like(frames[0], 90)
    gapped = frames[:150] + [blank] * 10 + frames[160:]
    found, spotter = spot_frames(gapped, busy.fps)
    assert np.isnan(np.asarray(spotter.signals["micro"])[150:160]).all()
    assert not any(i.onset < 160 and i.offset >= 150 for i in found)


def test_the_learned_second_stage_finds_the_expressions_and_keeps_quiet(long_videos):
    """SpotConfig(method="learned"): the packaged logistic regression instead of min_snr and
    min_duration; same candidates, same blink rule. Its scores are probabilities."""
    busy, quiet, _ = long_videos
    cfg = SpotConfig(method="learned")
    found, spotter = spot_frames(read(busy), busy.fps, cfg)
    scores = score_videos([(found, busy.truth)])
    chance = random_baseline([(found, busy.truth, len(busy.frames))], draws=100)
    assert scores["overall"]["tp"] >= 2, (found, busy.truth)
    assert scores["overall"]["f1"] > chance["overall"]["f1_p95"]
    assert all(spotter.stage.threshold <= i.score <= 1 for i in found)
    assert len(spot_frames(read(quiet), quiet.fps, cfg)[0]) <= 1


def test_a_second_stage_is_checked_and_round_trips(tmp_path):
    import json

    from mer_keras.runtime.spot_stage import FEATURES, LEARNED, SecondStage, candidate_features

    stage = SecondStage.from_dict(LEARNED)
    assert SecondStage.from_dict(stage.to_dict()) == stage and stage.fitted_on["videos"] >= 20
    f = candidate_features(8.0, 1.2, 0.3, 0.5, 0.7, 2.0, True, True, 200.0)
    assert f.shape == (len(FEATURES),) and 0 < stage.probability(f) < 1
    z = (f - np.array(stage.mean)) / np.array(stage.scale)
    assert stage.probability(f) == pytest.approx(1 / (1 + np.exp(-(z @ np.array(stage.coef) + stage.intercept))))
    path = tmp_path / "stage.json"
    path.write_text(json.dumps({**stage.to_dict(), "features": ["log_snr"]}))
    with pytest.raises(ValueError, match=f"{path}: not a spotting second stage"):
        SecondStage.from_file(path)
    path.write_text("[]")
    with pytest.raises(ValueError, match="a JSON object is expected"):
        SecondStage.from_file(path)
    with pytest.raises(ValueError, match="threshold must be in"):
        SecondStage.from_dict({**stage.to_dict(), "threshold": 1.5})
    with pytest.raises(ValueError, match="spotting method 'deep'"):
        SpotConfig(method="deep")
    with pytest.raises(ValueError, match="learned_model is for method 'learned'"):
        SpotConfig(learned_model=str(path))
