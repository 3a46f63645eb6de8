"""MEGC spotting scores: IoU, one-to-one matching, per-type and pooled counts, the random baseline."""

import numpy as np
import pytest

from mer_keras.runtime.intervals import (
    Interval,
    iou,
    match,
    random_baseline,
    random_intervals,
    score_videos,
)


def test_iou_counts_frames_with_both_ends_included():
    a = Interval(10, 12, 19)              # 10 frames
    assert iou(a, a) == 1.0
    assert iou(a, Interval(15, 16, 24)) == pytest.approx(5 / 15)
    assert iou(a, Interval(19, 19, 19)) == pytest.approx(1 / 10)   # one shared frame
    assert iou(a, Interval(20, 21, 25)) == 0.0                     # adjacent: no overlap


def test_interval_refuses_frames_out_of_order_and_unknown_types():
    with pytest.raises(ValueError, match="onset 5, apex 3"):
        Interval(5, 3, 9)
    with pytest.raises(ValueError, match="type 'blink'"):
        Interval(1, 2, 3, "blink")


def test_matching_is_one_to_one_best_iou_first_and_needs_half_overlap():
    truth = [Interval(0, 5, 9), Interval(20, 25, 29)]
    spotted = [Interval(1, 5, 9), Interval(0, 4, 8), Interval(22, 25, 40)]
    pairs = match(spotted, truth)
    # both spotted intervals overlap truth 0; the better one (IoU 0.9 vs 0.9: first index) takes it, once
    assert [(i, j) for i, j, _ in pairs] == [(0, 0)]
    assert iou(spotted[2], truth[1]) < 0.5           # 8 of 21 frames: not a true positive
    assert match(spotted, truth, threshold=0.3)[-1][:2] == (2, 1)


def test_scores_are_per_type_and_pooled_over_videos():
    v1_truth = [Interval(0, 3, 9, "micro"), Interval(50, 60, 149, "macro")]
    v1_spot = [Interval(0, 3, 9, "micro"), Interval(50, 60, 149, "micro"), Interval(200, 201, 210, "micro")]
    v2_truth = [Interval(10, 12, 19, "micro")]
    v2_spot = [Interval(10, 12, 19, "micro"), Interval(30, 40, 100, "macro")]
    s = score_videos([(v1_spot, v1_truth), (v2_spot, v2_truth)])
    # a spotted micro-expression over a macro-expression is not a true positive (types are matched apart)
    assert s["micro"] == {"tp": 2, "fp": 2, "fn": 0, "spotted": 4, "truth": 2, "precision": 0.5, "recall": 1.0,
                          "f1": pytest.approx(0.6667, abs=1e-4)}
    assert (s["macro"]["tp"], s["macro"]["spotted"], s["macro"]["truth"]) == (0, 1, 1)
    assert (s["overall"]["tp"], s["overall"]["spotted"], s["overall"]["truth"]) == (2, 5, 3)
    assert s["overall"]["f1"] == pytest.approx(2 * 0.4 * (2 / 3) / (0.4 + 2 / 3), abs=1e-4)


def test_nothing_spotted_or_nothing_to_find_scores_zero_not_nan():
    assert score_videos([([], [Interval(0, 1, 2)])])["overall"]["f1"] == 0.0
    assert score_videos([([Interval(0, 1, 2)], [])])["overall"]["precision"] == 0.0


def test_random_intervals_keep_count_length_and_type_and_stay_in_the_video():
    rng = np.random.default_rng(0)
    spotted = [Interval(3, 5, 12, "micro"), Interval(40, 50, 139, "macro")]
    for _ in range(50):
        placed = random_intervals(spotted, 200, rng)
        assert [(p.frames, p.type) for p in placed] == [(10, "micro"), (100, "macro")]
        assert all(0 <= p.onset <= p.apex <= p.offset < 200 for p in placed)


def test_random_baseline_is_seeded_and_far_below_a_perfect_spotter():
    truth = [Interval(100 * k, 100 * k + 4, 100 * k + 9) for k in range(1, 9)]
    videos = [(truth, truth, 1000)]
    a, b = random_baseline(videos, draws=50, seed=3), random_baseline(videos, draws=50, seed=3)
    assert a == b
    assert a["overall"]["f1_mean"] < 0.2 and score_videos([(truth, truth)])["overall"]["f1"] == 1.0


def test_spot_then_recognise_score_by_hand():
    """STRS = micro spotting F1 x recognition UF1 of the true positives; by hand: 2 TP, 1 FP, 1 FN
    give P = R = F1 = 2/3; recognition UF1 0.5 gives STRS 1/3. The MEGC2025 baseline's SAMM row:
    0.0278 x 0.2222 = 0.0062. No true positive: 0."""
    from mer_keras.runtime.intervals import spot_then_recognise

    s = spot_then_recognise({"tp": 2, "fp": 1, "fn": 1, "precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3}, 0.5, 0.5, 2)
    assert s["strs"] == pytest.approx(1 / 3, abs=1e-4) and s["recognised"] == 2
    assert spot_then_recognise({"f1": 0.0278}, 0.2222)["strs"] == pytest.approx(0.0062, abs=1e-4)
    assert spot_then_recognise({"f1": 0.4}, None)["strs"] == 0.0
