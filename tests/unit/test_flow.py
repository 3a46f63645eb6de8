import cv2
import numpy as np
import pytest

from mer_keras.preprocess.flow import FLOW_METHODS, flow_representation, optical_flow, optical_strain


def _texture(size=96, seed=0):
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=(size, size)).astype(np.float32)
    img = cv2.GaussianBlur(noise, (0, 0), 2.0)
    img = (img - img.min()) / (img.max() - img.min()) * 200 + 25
    return img.astype(np.float32)


def _shift(img, dx, dy):
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(img, m, img.shape[::-1], flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


@pytest.mark.parametrize("method", FLOW_METHODS)
def test_subpixel_shift_is_recovered(method):
    img = _texture()
    dx, dy = 0.6, -0.35
    a, b = img.astype(np.uint8), _shift(img, dx, dy).astype(np.uint8)
    flow = optical_flow(a, b, method)
    centre = flow[16:-16, 16:-16]
    assert flow.shape == (96, 96, 2) and flow.dtype == np.float32
    assert abs(np.median(centre[..., 0]) - dx) < 0.12, np.median(centre[..., 0])
    assert abs(np.median(centre[..., 1]) - dy) < 0.12, np.median(centre[..., 1])


def test_strain_of_known_fields():
    h = w = 32
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    translation = np.stack([np.full((h, w), 1.5), np.full((h, w), -0.5)], -1)
    np.testing.assert_allclose(optical_strain(translation), 0, atol=1e-6)
    k = 0.02  # uniform stretch along x: e_xx = k, others 0 -> |e| = k
    stretch = np.stack([k * xx, np.zeros_like(xx)], -1)
    np.testing.assert_allclose(optical_strain(stretch), k, rtol=1e-4)
    shear = np.stack([k * yy, np.zeros_like(xx)], -1)  # du/dy = k -> e_xy = k/2 -> |e| = sqrt(2) k/2
    np.testing.assert_allclose(optical_strain(shear), np.sqrt(2) * k / 2, rtol=1e-4)


def test_flow_representation_range_and_errors():
    img = _texture(128)
    rep = flow_representation(img.astype(np.uint8), _shift(img, 1.0, 0).astype(np.uint8), size=28)
    assert rep.shape == (28, 28, 3) and rep.min() >= 0 and rep.max() <= 255
    assert rep[4:-4, 4:-4, 0].mean() > 127.5 + 2  # positive u encodes above mid-grey
    with pytest.raises(ValueError, match="unknown flow method"):
        optical_flow(img.astype(np.uint8), img.astype(np.uint8), "lucas")
    with pytest.raises(ValueError, match="differ in size"):
        optical_flow(img.astype(np.uint8), img[:64].astype(np.uint8))


def test_the_minmax_encoding_stretches_each_channel_as_the_published_images_are():
    from mer_keras.errors import OptionError
    from mer_keras.preprocess.flow import encode_flow, minmax_channels
    from mer_keras.preprocess.representation import RepresentationConfig

    rng = np.random.default_rng(0)
    flow = rng.normal(0, 0.05, (56, 56, 2)).astype(np.float32)  # sub-pixel motion
    strain = np.abs(rng.normal(0, 0.01, (56, 56))).astype(np.float32)
    mm = encode_flow(flow, strain, 28, encoding="minmax")
    assert mm.shape == (28, 28, 3)
    np.testing.assert_allclose(mm.min(axis=(0, 1)), 0) and np.testing.assert_allclose(mm.max(axis=(0, 1)), 255)
    fixed = encode_flow(flow, strain, 28)
    assert np.ptp(fixed[..., 0]) < 5  # the fixed scale keeps a sub-pixel motion small (a few of 255 levels)
    # minmax of the fixed image's u equals the minmax encoding's u (both are affine in the resized u)
    np.testing.assert_allclose(minmax_channels(fixed[..., :1]), mm[..., :1], atol=0.05)
    assert (minmax_channels(np.full((4, 4, 1), 7.0)) == 0).all()
    with pytest.raises(OptionError, match="flow encoding"):
        encode_flow(flow, strain, 28, encoding="per-clip")
    with pytest.raises(OptionError, match="flow representation"):
        RepresentationConfig(representation="apex", flow_encoding="minmax")
