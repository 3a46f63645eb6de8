"""Representations from records: shapes, ranges, caching, and clear errors on bad input."""

import dataclasses

import numpy as np
import pytest

from mer_keras.data.pipeline import RepresentationConfig, build_inputs, read_frame
from mer_keras.data.records import Sample


@pytest.mark.parametrize("representation, size", [("dynamic_image", 112), ("apex", 112), ("flow", 28)])
def test_representations_shapes_and_ranges(tiny_synthetic, representation, size):
    _, samples = tiny_synthetic
    x = build_inputs(samples[:2], RepresentationConfig(representation=representation, size=size))
    assert x.shape == (2, size, size, 3) and x.dtype == np.float32
    assert x.min() >= 0 and x.max() <= 255 and x.std() > 1
    if representation == "dynamic_image":
        assert x.reshape(2, -1).min(1).max() == 0 and x.reshape(2, -1).max(1).min() == pytest.approx(255)


def test_cache_hit_and_invalidation(tiny_synthetic, tmp_path):
    _, samples = tiny_synthetic
    cfg = RepresentationConfig()
    a = build_inputs(samples[:3], cfg, cache_dir=tmp_path)
    folders = list((tmp_path / "clips").iterdir())
    assert len(folders) == 1 and len(list(folders[0].glob("*.npy"))) == 3  # one file per clip
    calls = []
    b = build_inputs(samples[:3], cfg, cache_dir=tmp_path, progress=lambda d, t: calls.append(d))
    np.testing.assert_array_equal(a, b)
    assert calls == [3]  # everything already cached: progress starts (and ends) at 3 of 3
    build_inputs(samples[:3], dataclasses.replace(cfg, crop=96), cache_dir=tmp_path)
    assert len(list((tmp_path / "clips").iterdir())) == 2  # another config, another folder


def test_a_cached_input_holding_nan_is_named_with_its_clip_and_file(tiny_synthetic, tmp_path):
    """A cache file whose values are NaN (a damaged disk, a hand-edited cache) is refused with the
    clip and the file named, before any training uses it."""
    from mer_keras.data.pipeline import cache_path
    from mer_keras.errors import DataError

    _, samples = tiny_synthetic
    cfg = RepresentationConfig(representation="flow", size=28, flow_method="dis")
    build_inputs(samples[:3], cfg, cache_dir=tmp_path)
    bad = cache_path(tmp_path, samples[1], cfg)
    x = np.load(bad)
    x[3, 4, 0] = np.nan
    np.save(bad, x)
    with pytest.raises(DataError, match=rf"^the data: input {samples[1].key} .*\(cached as {bad}\) holds NaN values;"):
        build_inputs(samples[:3], cfg, cache_dir=tmp_path)


def test_unreadable_frame_is_named(tiny_synthetic, tmp_path):
    _, samples = tiny_synthetic
    bad = tmp_path / "img1.jpg"
    bad.write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(ValueError, match="img1.jpg"):
        read_frame(str(bad))
    paths = list(samples[0].frame_paths)
    paths[samples[0].onset] = str(bad)
    s = dataclasses.replace(samples[0], frame_paths=tuple(paths))
    with pytest.raises(ValueError, match="cannot read frame"):
        build_inputs([s], RepresentationConfig())


def test_record_validation_names_the_clip():
    paths = tuple(f"f{i}.jpg" for i in range(10))
    common = dict(subject="sub01", clip_id="EP01", frame_paths=paths, aus=(), emotion="x", label="x",
                  database="d", fps=200.0, source="sheet.xlsx:7")
    with pytest.raises(ValueError, match=r"apex 9 is outside onset..offset 1..5 in clip sub01/EP01 \(sheet.xlsx:7\)"):
        Sample(onset=1, apex=9, offset=5, **common)
    with pytest.raises(ValueError, match="onset > offset"):
        Sample(onset=6, apex=6, offset=5, **common)
    with pytest.raises(ValueError, match="at least 2 are needed"):
        Sample(onset=0, apex=0, offset=0, **{**common, "frame_paths": ("a.jpg",)})


def test_sequence_and_grayscale_representations(tiny_synthetic):
    from mer_keras.data.pipeline import sequence_indices

    assert sequence_indices(10, 24, 8) == [10, 12, 14, 16, 18, 20, 22, 24]
    assert sequence_indices(3, 5, 4) == [3, 4, 4, 5]  # shorter clips repeat frames
    _, samples = tiny_synthetic
    seq = build_inputs(samples[:2], RepresentationConfig(representation="sequence", size=48, frames=6))
    assert seq.shape == (2, 6, 48, 48, 3) and seq.min() >= 0 and seq.max() <= 255
    assert np.abs(seq[:, -1] - seq[:, 0]).mean() > 0.1  # the frames differ (onset..offset, not one frame)
    gray = build_inputs(samples[:2], RepresentationConfig(representation="apex", size=64, channels=1))
    rgb = build_inputs(samples[:2], RepresentationConfig(representation="apex", size=64))
    assert gray.shape == (2, 64, 64, 1)
    np.testing.assert_allclose(gray[..., 0], rgb @ np.array([0.299, 0.587, 0.114], np.float32), atol=1e-3)
    with pytest.raises(ValueError, match="grayscale input exists for apex and sequence"):
        RepresentationConfig(representation="flow", channels=1)


def test_cache_keys_of_existing_configs_did_not_change():
    from mer_keras.data.pipeline import config_key

    # Fields added with the sequence representation stay out of the key at their defaults, so
    # caches built before them stay valid (keys computed with the code before the fields existed,
    # for PIPELINE_VERSION 2: version 1's were dynamic_image-252455710f0e and flow-79caff8702f2).
    assert config_key(RepresentationConfig()) == "dynamic_image-291c6dc35b29"
    assert config_key(RepresentationConfig(representation="flow", size=28)) == "flow-1f37c5f2bd94"
    assert config_key(RepresentationConfig(frames=9, representation="sequence")) != config_key(
        RepresentationConfig(representation="sequence"))


def test_region_flow_tiles_eyes_and_mouth_corners():
    from mer_keras.data.pipeline import region_centres, region_flow_representation

    rng = np.random.default_rng(0)
    texture = (rng.uniform(0, 255, (128, 128)) * 1.0).astype(np.float32)
    import cv2

    texture = cv2.GaussianBlur(texture, (0, 0), 2.0)
    onset = np.repeat(np.clip(texture, 0, 255).astype(np.uint8)[..., None], 3, -1)
    shift = np.float32([[1, 0, 2.0], [0, 1, 0.0]])  # the apex moves 2 px right everywhere
    apex = cv2.warpAffine(onset, shift, (128, 128), borderMode=cv2.BORDER_REFLECT)
    landmarks = rng.uniform(20, 108, (468, 2)).astype(np.float32)
    x = region_flow_representation(onset, apex, landmarks, size=28, method="farneback")
    assert x.shape == (28, 28, 3)
    u = (x[..., 0] - 127.5) / 127.5 * 8.0 * (128 / 28)  # back to pixels at the 128 px crop
    centre = u[3:11, 3:11], u[3:11, 17:25], u[17:25, 3:11], u[17:25, 17:25]
    for tile in centre:  # every tile sees the same 2 px translation, in the same units as whole-face flow
        assert abs(np.median(tile) - 2.0) < 0.3
    c = region_centres(landmarks)
    assert c[0, 0] <= c[1, 0] and c[2, 0] <= c[3, 0]  # image-left before image-right
