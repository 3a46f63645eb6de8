"""Face photos and the pseudo-subjects made from them.

The photos are the real faces installed packages ship (matplotlib's ``grace_hopper.jpg``,
scikit-image's ``astronaut.png``) plus any images of a user folder. Each photo becomes several
identities by a landmark-driven face-shape morph, a head roll, a scale, a skin-tone shift, a gamma
and, for every second identity of a photo, a mirror image (:func:`make_subjects`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mer_keras.data.synthetic.mesh import (
    CHIN,
    INNER_BROW,
    JAW,
    LIP_CORNER,
    LOWER_LIP,
    MID_BROW,
    NOSE_TIP,
    NOSE_WING,
    OUTER_BROW,
    face_axes,
)
from mer_keras.data.synthetic.warping import dense_field, warp
from mer_keras.errors import DataError, MissingFileError
from mer_keras.preprocess import portable
from mer_keras.preprocess.face import LEFT_EYE, RIGHT_EYE, FaceMeshLandmarker


def bundled_face_photos() -> list[tuple[str, np.ndarray]]:
    """The real face photographs shipped by installed packages.

    Returns:
        [(name, (H, W, 3) uint8 RGB image)]: matplotlib's grace_hopper.jpg, scikit-image's astronaut.
    """
    import skimage.data
    from matplotlib import cbook
    from PIL import Image

    with cbook.get_sample_data("grace_hopper.jpg") as fh:
        hopper = np.asarray(Image.open(fh).convert("RGB"))
    return [("grace_hopper", hopper), ("astronaut", np.asarray(skimage.data.astronaut()))]


def load_face_photos(faces_dir: str | os.PathLike | None = None) -> list[tuple[str, np.ndarray]]:
    """Bundled photos plus every readable image in ``faces_dir`` (sorted by name).

    Raises:
        MissingFileError: ``faces_dir`` does not exist. DataError: an image there is unreadable.
    """
    photos = bundled_face_photos()
    if faces_dir is not None:
        d = Path(faces_dir)
        if not d.is_dir():
            raise MissingFileError(f"--faces directory {d} does not exist")
        for p in sorted(d.iterdir()):
            if p.suffix.lower() not in {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}:
                continue
            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if img is None:
                raise DataError(f"cannot read face image {p}")
            photos.append((p.stem, cv2.cvtColor(img, cv2.COLOR_BGR2RGB)))
    return photos


@dataclass
class PseudoSubject:
    """An identity: (S, S, 3) uint8 RGB neutral face image and its (468, 2) landmarks."""

    name: str
    photo: str
    image: np.ndarray
    landmarks: np.ndarray
    params: dict


def _crop_face(photo: np.ndarray, landmarks: np.ndarray, size: int, scale: float, roll_deg: float) -> np.ndarray:
    mid, ex, ey, iod = face_axes(landmarks)
    centre = mid + 0.55 * iod * ey
    s = scale * size / (3.3 * iod)
    angle = math.degrees(math.atan2(ex[1], ex[0])) + roll_deg
    m = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle, s)
    m[:, 2] += np.array([size / 2, size / 2]) - centre
    return cv2.warpAffine(photo, m, (size, size), flags=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)


def _shape_morph(landmarks: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    mid, ex, ey, iod = face_axes(landmarks)
    rel = landmarks - mid
    side = np.sign(portable.matmul(rel, ex))
    p = {"jaw_width": rng.uniform(-0.10, 0.10), "face_length": rng.uniform(-0.08, 0.08),
         "eye_spacing": rng.uniform(-0.05, 0.05), "brow_height": rng.uniform(-0.06, 0.06),
         "nose_length": rng.uniform(-0.05, 0.05), "mouth_width": rng.uniform(-0.07, 0.07)}
    disp = np.zeros_like(landmarks, dtype=np.float64)

    def move(idx, out, down):
        idx = list(idx)
        disp[idx] += (out * side[idx, None] * ex + down * ey) * iod

    move(JAW, p["jaw_width"], 0.0)
    move(CHIN + LOWER_LIP, 0.0, p["face_length"])
    move(RIGHT_EYE + LEFT_EYE, p["eye_spacing"], 0.0)
    move(INNER_BROW + MID_BROW + OUTER_BROW, 0.0, -p["brow_height"])
    move(NOSE_TIP + NOSE_WING, 0.0, p["nose_length"])
    move(LIP_CORNER, p["mouth_width"], 0.0)
    d2 = ((landmarks[:, None] - landmarks[None]) ** 2).sum(-1) / (0.15 * iod) ** 2
    k = portable.exp(-0.5 * d2)
    moved = disp.any(1)
    spread = portable.matmul(k[:, moved], disp[moved]) / np.maximum(1.0, k[:, moved].sum(1))[:, None]
    return spread.astype(np.float32), {k_: round(float(v), 4) for k_, v in p.items()}


def _skin_and_gamma(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    p = {"lightness": rng.uniform(0.85, 1.1), "a_shift": rng.uniform(-6, 8), "b_shift": rng.uniform(-6, 10),
         "gamma": rng.uniform(0.8, 1.25)}
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    lab[..., 0] *= p["lightness"]
    lab[..., 1] += p["a_shift"]
    lab[..., 2] += p["b_shift"]
    rgb = portable.power_lut(p["gamma"])[cv2.cvtColor(np.clip(lab, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)]
    return np.clip(rgb, 0, 255).astype(np.uint8), {k: round(float(v), 4) for k, v in p.items()}


def make_subjects(photos: list[tuple[str, np.ndarray]], n: int, size: int, seed: int,
                  landmarker: FaceMeshLandmarker) -> list[PseudoSubject]:
    """Build ``n`` pseudo-subjects, cycling over the photos.

    Raises:
        DataError: a photo has no detectable face (named), or a morph loses the face 20 times.
    """
    base = []
    for name, photo in photos:
        lm = landmarker(photo)
        if lm is None:
            raise DataError(f"no face found in face photo {name!r}")
        base.append((name, photo, lm))
    subjects = []
    for i in range(n):
        name, photo, lm = base[i % len(base)]
        rng = np.random.default_rng([seed, 1000 + i])
        for _ in range(20):
            # every second subject made from the same photo is mirrored (independent of the photo count)
            params = {"scale": rng.uniform(0.9, 1.1), "roll_deg": rng.uniform(-4, 4),
                      "mirror": bool((i // len(base)) % 2)}
            crop = _crop_face(photo, lm, size, params["scale"], params["roll_deg"])
            crop_lm = landmarker(crop)
            if crop_lm is None:
                continue
            shape_disp, shape_p = _shape_morph(crop_lm, rng)
            img = warp(crop, dense_field(crop_lm, shape_disp, crop.shape[:2]))
            img, tone_p = _skin_and_gamma(img, rng)
            if params["mirror"]:
                img = np.ascontiguousarray(img[:, ::-1])
            final_lm = landmarker(img)
            if final_lm is not None:
                subjects.append(PseudoSubject(f"sub{i + 1:02d}", name, img, final_lm,
                                              {**params, **shape_p, **tone_p}))
                break
        else:
            raise DataError(f"could not make pseudo-subject {i + 1} from photo {name!r}: face lost after morphing")
    return subjects
