import numpy as np
import pytest

from mer_keras.data.synthetic import bundled_face_photos
from mer_keras.preprocess.face import (
    EYE_DISTANCE,
    EYE_HEIGHT,
    FaceNotFoundError,
    align_clip,
    eye_centres,
    get_landmarker,
)


@pytest.mark.parametrize("index", [0, 1])
def test_alignment_levels_eyes_at_fixed_distance(index):
    name, photo = bundled_face_photos()[index]
    lm = get_landmarker()(photo)
    assert lm is not None and lm.shape == (468, 2), name
    size = 128
    aligned = align_clip([photo, photo], size=size, clip_id=name)
    assert aligned.shape == (2, size, size, 3) and aligned.dtype == np.uint8
    # Re-detect on the crop: eyes level, at the canonical positions within 2 px.
    lm2 = get_landmarker()(aligned[0])
    assert lm2 is not None
    left, right = eye_centres(lm2)
    assert abs(left[1] - right[1]) < 2.0
    assert abs((right[0] - left[0]) - EYE_DISTANCE * size) < 2.5
    assert abs((left[1] + right[1]) / 2 - EYE_HEIGHT * size) < 2.5


def test_one_transform_per_clip_keeps_motion():
    # The second frame is the first shifted by 3 px: alignment must keep the shift (not re-align it away).
    _, photo = bundled_face_photos()[0]
    shifted = np.roll(photo, 3, axis=1)
    aligned = align_clip([photo, shifted], size=128)
    diff_same = np.abs(aligned[0].astype(int) - align_clip([photo, photo], size=128)[1].astype(int)).mean()
    diff_shift = np.abs(aligned[0].astype(int) - aligned[1].astype(int)).mean()
    assert diff_same < 1e-6 and diff_shift > 3.0


def test_no_face_raises_with_clip_name():
    blank = np.full((200, 200, 3), 128, np.uint8)
    with pytest.raises(FaceNotFoundError, match="sub99/EP01"):
        align_clip([blank, blank], size=128, clip_id="sub99/EP01")


def test_grayscale_frames_are_expanded():
    _, photo = bundled_face_photos()[1]
    gray = photo.mean(axis=2).astype(np.uint8)
    out = align_clip([gray, gray], size=64)
    assert out.shape == (2, 64, 64, 3)
