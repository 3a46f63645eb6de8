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
