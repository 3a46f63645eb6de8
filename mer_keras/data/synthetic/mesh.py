"""Regions of the mediapipe 468-point face mesh and the face-relative frame they move in.

The landmark groups name the mesh points the generator moves: by facial action
(:data:`mer_keras.data.synthetic.warping.AU_MOTION`) and by identity morph
(:mod:`mer_keras.data.synthetic.faces`). Indices are those of mediapipe's canonical face mesh.
"""

from __future__ import annotations

import numpy as np

from mer_keras.preprocess import portable
from mer_keras.preprocess.face import LEFT_EYE, RIGHT_EYE

# Landmark groups of the mediapipe 468-point mesh.
INNER_BROW = (107, 66, 55, 65, 336, 296, 285, 295)
MID_BROW = (105, 52, 334, 282)
OUTER_BROW = (70, 63, 46, 53, 300, 293, 276, 283)
UPPER_LID = (157, 158, 159, 160, 161, 384, 385, 386, 387, 388)
LOWER_LID = (144, 145, 153, 154, 163, 373, 374, 380, 381, 390)
CHEEK = (50, 101, 118, 117, 119, 100, 36, 205, 280, 330, 347, 346, 348, 329, 266, 425)
NOSE_WING = (48, 64, 98, 219, 115, 278, 294, 327, 439, 344)
UPPER_LIP = (0, 37, 39, 40, 185, 267, 269, 270, 409, 13, 82, 81, 312, 311)
LIP_CORNER = (61, 78, 291, 308)
NEAR_CORNER = (57, 287, 43, 273, 106, 335, 204, 424)
LOWER_LIP = (17, 84, 314, 181, 405, 91, 321, 14, 87, 317)
CHIN = (152, 175, 199, 200, 148, 377, 176, 400)
NASOLABIAL = (206, 426, 203, 423, 36, 266)
JAW = (172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 58, 132, 361, 323)
NOSE_TIP = (1, 4, 5, 195, 2)


def face_axes(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Face frame: origin at the eye midpoint, ex towards the image-right eye, ey to the chin."""
    a = landmarks[list(RIGHT_EYE)].mean(0)
    b = landmarks[list(LEFT_EYE)].mean(0)
    if a[0] > b[0]:
        a, b = b, a
    d = b - a
    iod = float(np.hypot(*d))
    ex = d / iod
    ey = np.array([-ex[1], ex[0]])
    if portable.matmul(landmarks[152] - (a + b) / 2, ey) < 0:  # make ey point to the chin (landmark 152)
        ey = -ey
    return (a + b) / 2, ex, ey, iod
