import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mer_keras.preprocess.dynamic_image import dynamic_image, rank_pooling_coefficients, scale_to_uint8_range


@given(st.integers(min_value=2, max_value=60))
def test_coefficients_match_bilen_sum_form(T):
    # Bilen's released code computes alpha_t = sum_{j=t..T} (2j - T - 1) / j; Eq. (4) is its closed form.
    expected = np.array([sum((2 * j - T - 1) / j for j in range(t, T + 1)) for t in range(1, T + 1)])
    np.testing.assert_allclose(rank_pooling_coefficients(T), expected, rtol=1e-10, atol=1e-10)


def test_coefficients_small_case_by_hand():
    # T = 3: H = [0, 1, 1.5, 11/6]; alpha_t = 2(4 - t) - 4 (H_3 - H_{t-1})
    np.testing.assert_allclose(rank_pooling_coefficients(3), [6 - 4 * 11 / 6, 4 - 4 * 5 / 6, 2 - 4 * 1 / 3])


def test_dynamic_image_is_weighted_sum_per_channel():
    rng = np.random.default_rng(0)
    clip = rng.integers(0, 255, size=(5, 4, 3, 2)).astype(np.uint8)
    alpha = rank_pooling_coefficients(5)
    expected = sum(alpha[t] * clip[t].astype(np.float64) for t in range(5))
    np.testing.assert_allclose(dynamic_image(clip), expected, rtol=1e-5, atol=1e-3)


def test_static_clip_gives_zero_and_ramp_gives_positive():
    static = np.full((6, 4, 4, 3), 100, np.uint8)
    np.testing.assert_allclose(dynamic_image(static), 0, atol=1e-3)
    ramp = np.arange(6, dtype=np.float32)[:, None, None, None] * np.ones((6, 4, 4, 3), np.float32)
    assert (dynamic_image(ramp) > 0).all()  # brightening pixels get a positive dynamic image


def test_scaling_and_errors():
    img = np.array([[[-2.0], [0.0]], [[2.0], [1.0]]], np.float32)
    s = scale_to_uint8_range(img)
    assert s.min() == 0 and s.max() == 255
    assert np.isclose(s[0, 1, 0], 127.5)
    with pytest.raises(ValueError, match="at least 2 frames"):
        dynamic_image(np.zeros((1, 4, 4, 3)))
    with pytest.raises(ValueError, match="T, H, W, C"):
        dynamic_image(np.zeros((4, 4, 3)))


@given(st.integers(min_value=2, max_value=60))
def test_authors_coefficients_match_their_sum_form(T):
    # LEARNet's released dynamicimage.py: alpha_t = sum_{i=t..T} (2i - T) / i; closed form 2(T-t+1) - T (H_T - H_{t-1}).
    expected = np.array([sum((2 * i - T) / i for i in range(t, T + 1)) for t in range(1, T + 1)])
    np.testing.assert_allclose(rank_pooling_coefficients(T, "authors"), expected, rtol=1e-10, atol=1e-10)
    # Bilen's weights sum to 0, the authors' to T: the difference is sum_t (H_T - H_{t-1}) frame_t
    np.testing.assert_allclose(rank_pooling_coefficients(T).sum(), 0, atol=1e-9)
    np.testing.assert_allclose(rank_pooling_coefficients(T, "authors").sum(), T, rtol=1e-10)


def test_authors_image_is_bilen_plus_weighted_mean_frame():
    rng = np.random.default_rng(1)
    clip = rng.integers(0, 255, size=(7, 5, 4, 3)).astype(np.uint8)
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, 8))])
    extra = sum((harmonic[7] - harmonic[t]) * clip[t].astype(np.float64) for t in range(7))  # t is 0-based: H_{t}
    np.testing.assert_allclose(dynamic_image(clip, "authors"), dynamic_image(clip) + extra, rtol=1e-5, atol=1e-2)
    static = np.full((6, 4, 4, 3), 100, np.uint8)  # a static clip keeps its appearance: T x the frame
    np.testing.assert_allclose(dynamic_image(static, "authors"), 600, rtol=1e-5)
    with pytest.raises(ValueError, match="unknown dynamic-image weighting"):
        dynamic_image(static, "fernando")


def test_weighting_reaches_the_representation():
    from mer_keras.data.pipeline import config_key
    from mer_keras.errors import OptionError
    from mer_keras.preprocess.representation import RepresentationConfig

    # the weighting is part of the cache key (and of metadata.json): the two images are never mixed up,
    # while caches made before the option existed keep their key
    assert config_key(RepresentationConfig(dynamic_image="authors")) != config_key(RepresentationConfig())
    assert config_key(RepresentationConfig()) == config_key(RepresentationConfig(dynamic_image="bilen"))
    old_run = {"representation": "dynamic_image", "size": 112, "crop": 128, "flow_method": "tvl1"}  # before the option
    assert RepresentationConfig.from_dict(old_run).dynamic_image == "bilen"
    with pytest.raises(OptionError, match="applies to the dynamic_image representation"):
        RepresentationConfig(representation="flow", size=28, dynamic_image="authors")
