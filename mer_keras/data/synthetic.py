"""Embedded default data: synthetic micro-expressions rendered on real face photographs.

No micro-expression corpus may be downloaded, so the default run uses clips synthesised from
face photographs the installed packages ship: matplotlib's ``grace_hopper.jpg`` and
scikit-image's ``astronaut.png`` (plus any images passed with ``faces_dir``).

How a clip is made (see docs/DATASETS.md for the parameters and the limits):

1. Pseudo-subjects. Each photo is turned into several identities by a landmark-driven face-shape
   morph (jaw width, face length, eye spacing, brow height, nose length, mouth width), a head
   roll, a scale, a skin-tone shift (CIELAB a*, b*, L*), a gamma and, for half of them, a mirror
   image. The mediapipe face mesh is then run on the new identity image.
2. Facial actions. Each FACS action unit (AU) moves a set of mediapipe landmarks along a
   face-relative direction (in inter-ocular-distance units); the motion spreads to neighbouring
   landmarks with a Gaussian fall-off and is turned into a dense field by piecewise-affine
   interpolation over the Delaunay triangulation of the landmarks (scipy's LinearNDInterpolator)
   plus zero-motion image-border points. Frames are rendered by ``cv2.remap`` of the photo.
3. Classes (MEGC2019 composite): negative (AU4+AU7, AU9+AU10, AU14, AU15+AU17, AU4, AU4+AU15),
   positive (AU6+AU12, AU12), surprise (AU1+AU2, AU1+AU2+AU5, AU1+AU2+AU26). Drawn with
   probabilities 0.45 / 0.30 / 0.25, imbalanced like the real composite.
4. Temporal profile: smooth rise from onset to apex and fall to offset; onset-to-offset duration
   0.18-0.45 s at 100 fps; apex at 30-60 % of it; a few neutral frames before and after.
5. Low intensity: apex displacement of the strongest landmark 0.035-0.08 inter-ocular distances,
   about 1.6-3.7 px on the 128 px aligned face; each AU of a combination is scaled by 0.6-1.0.
6. Resting face: a static random signed mix of all AUs on every frame of a clip, of the same
   size as the expression, so that a single frame is ambiguous (see ``render_clip``).
7. Nuisances present in every class: blinks (AU45, 35 % of clips, larger than the expressions),
   a weak distractor AU from any class (25 % of clips), sub-pixel head jitter and drift,
   illumination flicker and Gaussian sensor noise; JPEG storage (quality 95) as in CASME II.

The output is written like a real database: ``<root>/sub01/clip001/img1.jpg ...`` and one coding
sheet ``coding.csv`` (Subject, Filename, OnsetFrame, ApexFrame, OffsetFrame, Action Units,
Estimated Emotion, ...). It is deterministic for a seed and cached (generated once, written to
a temporary folder and renamed, so an interrupted generation is never trusted).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from mer_keras.data.records import Sample
from mer_keras.preprocess.face import LEFT_EYE, RIGHT_EYE, FaceMeshLandmarker

GENERATOR_VERSION = 3
CLASSES = ("negative", "positive", "surprise")
CLASS_PROBABILITIES = (0.45, 0.30, 0.25)

AU_COMBINATIONS: dict[str, tuple[tuple[str, ...], ...]] = {
    "negative": (("AU4", "AU7"), ("AU9", "AU10"), ("AU14",), ("AU15", "AU17"), ("AU4",), ("AU4", "AU15")),
    "positive": (("AU6", "AU12"), ("AU12",)),
    "surprise": (("AU1", "AU2"), ("AU1", "AU2", "AU5"), ("AU1", "AU2", "AU26")),
}

# Landmark groups of the mediapipe 468-point mesh.
_INNER_BROW = (107, 66, 55, 65, 336, 296, 285, 295)
_MID_BROW = (105, 52, 334, 282)
_OUTER_BROW = (70, 63, 46, 53, 300, 293, 276, 283)
_UPPER_LID = (157, 158, 159, 160, 161, 384, 385, 386, 387, 388)
_LOWER_LID = (144, 145, 153, 154, 163, 373, 374, 380, 381, 390)
_CHEEK = (50, 101, 118, 117, 119, 100, 36, 205, 280, 330, 347, 346, 348, 329, 266, 425)
_NOSE_WING = (48, 64, 98, 219, 115, 278, 294, 327, 439, 344)
_UPPER_LIP = (0, 37, 39, 40, 185, 267, 269, 270, 409, 13, 82, 81, 312, 311)
_LIP_CORNER = (61, 78, 291, 308)
_NEAR_CORNER = (57, 287, 43, 273, 106, 335, 204, 424)
_LOWER_LIP = (17, 84, 314, 181, 405, 91, 321, 14, 87, 317)
_CHIN = (152, 175, 199, 200, 148, 377, 176, 400)
_NASOLABIAL = (206, 426, 203, 423, 36, 266)
_JAW = (172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 58, 132, 361, 323)
_NOSE_TIP = (1, 4, 5, 195, 2)

#: AU -> list of (landmarks, (outward, downward)) in inter-ocular distances at full intensity;
#: "outward" is away from the facial midline, "downward" towards the chin.
AU_MOTION: dict[str, tuple[tuple[tuple[int, ...], tuple[float, float]], ...]] = {
    "AU1": ((_INNER_BROW, (0.0, -1.0)), (_MID_BROW, (0.0, -0.5))),
    "AU2": ((_OUTER_BROW, (0.0, -1.0)), (_MID_BROW, (0.0, -0.5))),
    "AU4": ((_INNER_BROW, (-0.6, 0.6)), (_MID_BROW, (-0.3, 0.8)), (_OUTER_BROW, (0.0, 0.5))),
    "AU5": ((_UPPER_LID, (0.0, -0.8)),),
    "AU6": ((_CHEEK, (0.0, -0.8)), (_LOWER_LID, (0.0, -0.5))),
    "AU7": ((_LOWER_LID, (0.0, -0.8)), (_UPPER_LID, (0.0, 0.3))),
    "AU9": ((_NOSE_WING, (0.0, -1.0)), (_INNER_BROW, (0.0, 0.4)), (_UPPER_LIP, (0.0, -0.3))),
    "AU10": ((_UPPER_LIP, (0.0, -1.0)), (_NOSE_WING, (0.0, -0.3))),
    "AU12": ((_LIP_CORNER, (0.7, -0.7)), (_NASOLABIAL, (0.3, -0.4)), (_CHEEK, (0.0, -0.3))),
    "AU14": ((_LIP_CORNER, (0.8, 0.0)), (_NEAR_CORNER, (0.4, 0.0))),
    "AU15": ((_LIP_CORNER, (0.1, 1.0)), (_NEAR_CORNER, (0.0, 0.6))),
    "AU17": ((_CHIN, (0.0, -1.0)), (_LOWER_LIP, (0.0, -0.6))),
    "AU26": ((_LOWER_LIP, (0.0, 1.0)), (_CHIN, (0.0, 1.0)), (_LIP_CORNER, (0.0, 0.4))),
    "AU45": ((_UPPER_LID, (0.0, 1.0)), (_LOWER_LID, (0.0, -0.15))),
}


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of the generator (all in the units stated).

    Attributes:
        subjects: number of pseudo-subjects (>= 2; the default run uses 12).
        clips_per_subject: clips per pseudo-subject.
        seed: master seed; the output is a pure function of the config and the photos.
        fps: frame rate of the rendered clips in frames per second.
        frame_size: side of the square rendered frame in pixels (the face fills about 60 %).
        amplitude: (min, max) apex displacement of the strongest landmark, inter-ocular distances.
        duration: (min, max) onset-to-offset duration in seconds.
        rest_amplitude: (min, max) largest landmark displacement of the clip's resting face, IOD:
            a random signed mix of all AUs applied to every frame (see ``render_clip``).
        blink_probability, distractor_probability: per-clip probabilities of the nuisances.
        noise_sigma: (min, max) std of Gaussian sensor noise in 8-bit grey levels.
        jitter: std of the per-frame head-translation random walk, pixels.
        drift: maximum head drift over a clip, pixels (uniform in [-drift, drift] per axis).
        roll_jitter: std of the per-frame head-roll random walk, degrees.
        flicker: amplitude of the sinusoidal illumination flicker (relative gain).
        jpeg_quality: JPEG quality of the stored frames.
    """

    subjects: int = 12
    clips_per_subject: int = 20
    seed: int = 0
    fps: float = 100.0
    frame_size: int = 192
    amplitude: tuple[float, float] = (0.035, 0.08)
    duration: tuple[float, float] = (0.18, 0.45)
    rest_amplitude: tuple[float, float] = (0.04, 0.1)
    blink_probability: float = 0.35
    distractor_probability: float = 0.25
    noise_sigma: tuple[float, float] = (1.0, 3.0)
    jitter: float = 0.08
    drift: float = 0.6
    roll_jitter: float = 0.03
    flicker: float = 0.015
    jpeg_quality: int = 95


# ----------------------------------------------------------------------------------------------
# photos and landmarks


def bundled_face_photos() -> list[tuple[str, np.ndarray]]:
    """The real face photographs shipped by installed packages.

    Returns:
        [(name, (H, W, 3) uint8 RGB image)]: matplotlib's grace_hopper.jpg, scikit-image's astronaut.
    """
    from matplotlib import cbook
    from PIL import Image
    import skimage.data

    with cbook.get_sample_data("grace_hopper.jpg") as fh:
        hopper = np.asarray(Image.open(fh).convert("RGB"))
    return [("grace_hopper", hopper), ("astronaut", np.asarray(skimage.data.astronaut()))]


def load_face_photos(faces_dir: str | os.PathLike | None = None) -> list[tuple[str, np.ndarray]]:
    """Bundled photos plus every readable image in ``faces_dir`` (sorted by name).

    Raises:
        FileNotFoundError: ``faces_dir`` does not exist. ValueError: an image there is unreadable.
    """
    photos = bundled_face_photos()
    if faces_dir is not None:
        d = Path(faces_dir)
        if not d.is_dir():
            raise FileNotFoundError(f"--faces directory {d} does not exist")
        for p in sorted(d.iterdir()):
            if p.suffix.lower() not in {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}:
                continue
            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if img is None:
                raise ValueError(f"cannot read face image {p}")
            photos.append((p.stem, cv2.cvtColor(img, cv2.COLOR_BGR2RGB)))
    return photos


def _face_axes(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Face frame: origin at the eye midpoint, ex towards the image-right eye, ey to the chin."""
    a = landmarks[list(RIGHT_EYE)].mean(0)
    b = landmarks[list(LEFT_EYE)].mean(0)
    if a[0] > b[0]:
        a, b = b, a
    d = b - a
    iod = float(np.hypot(*d))
    ex = d / iod
    ey = np.array([-ex[1], ex[0]])
    if ey @ (landmarks[152] - (a + b) / 2) < 0:  # make ey point to the chin (landmark 152)
        ey = -ey
    return (a + b) / 2, ex, ey, iod


def landmark_displacements(landmarks: np.ndarray, aus: dict[str, float], sigma: float = 0.12) -> np.ndarray:
    """Displacement of each landmark for a weighted set of AUs.

    Args:
        landmarks: (468, 2) float landmarks in pixels.
        aus: {AU name: intensity}; intensity 1 moves the AU's anchors by the vectors of
            :data:`AU_MOTION` times the inter-ocular distance.
        sigma: Gaussian fall-off radius, inter-ocular distances.

    Returns:
        (468, 2) float32 displacements in pixels.
    """
    mid, ex, ey, iod = _face_axes(landmarks)
    side = np.sign((landmarks - mid) @ ex)
    sparse = np.zeros_like(landmarks, dtype=np.float64)
    weight = np.zeros(len(landmarks))
    for au, intensity in aus.items():
        for idx, (out, down) in AU_MOTION[au]:
            idx = list(idx)
            vec = (out * side[idx, None] * ex[None] + down * ey[None]) * iod * intensity
            sparse[idx] += vec
            weight[idx] = 1.0
    anchors = np.flatnonzero(weight)
    if anchors.size == 0:
        return np.zeros_like(landmarks, dtype=np.float32)
    d2 = ((landmarks[:, None, :] - landmarks[None, anchors, :]) ** 2).sum(-1) / (sigma * iod) ** 2
    k = np.exp(-0.5 * d2)
    spread = (k @ sparse[anchors]) / np.maximum(1.0, k.sum(1))[:, None]
    return spread.astype(np.float32)


def dense_field(landmarks: np.ndarray, displacements: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Piecewise-affine dense displacement field through the landmarks.

    Args:
        landmarks: (N, 2) control points in pixels; displacements: (N, 2) pixels at those points.
        shape: (H, W) of the output field.
    Returns:
        (H, W, 2) float32 displacement (dx, dy) in pixels, zero at the image border.
    """
    from scipy.interpolate import LinearNDInterpolator

    h, w = shape
    border = np.array([(x, y) for x in np.linspace(0, w - 1, 9) for y in (0, h - 1)]
                      + [(x, y) for y in np.linspace(0, h - 1, 9)[1:-1] for x in (0, w - 1)], np.float64)
    pts = np.vstack([landmarks.astype(np.float64), border])
    vals = np.vstack([displacements.astype(np.float64), np.zeros((len(border), 2))])
    interp = LinearNDInterpolator(pts, vals, fill_value=0.0)
    gy, gx = np.mgrid[0:h, 0:w]
    field = interp(gx.ravel(), gy.ravel()).reshape(h, w, 2).astype(np.float32)
    return cv2.GaussianBlur(field, (0, 0), sigmaX=1.5)


def warp(image: np.ndarray, field: np.ndarray, affine: np.ndarray | None = None) -> np.ndarray:
    """Render ``image`` with points moved by ``field`` (pixels), then an optional 2x3 affine.

    Backward mapping with the small-displacement approximation: out(x) = image(x - field(x)).
    """
    h, w = field.shape[:2]
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    mx, my = gx, gy
    if affine is not None:  # out(x) = image(A^-1 x): invert the (near-identity) affine
        inv = cv2.invertAffineTransform(affine)
        mx = inv[0, 0] * gx + inv[0, 1] * gy + inv[0, 2]
        my = inv[1, 0] * gx + inv[1, 1] * gy + inv[1, 2]
    mx = (mx - field[..., 0]).astype(np.float32)
    my = (my - field[..., 1]).astype(np.float32)
    return cv2.remap(image, mx, my, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


# ----------------------------------------------------------------------------------------------
# pseudo-subjects


@dataclass
class PseudoSubject:
    """An identity: (S, S, 3) uint8 RGB neutral face image and its (468, 2) landmarks."""

    name: str
    photo: str
    image: np.ndarray
    landmarks: np.ndarray
    params: dict


def _crop_face(photo: np.ndarray, landmarks: np.ndarray, size: int, scale: float, roll_deg: float) -> np.ndarray:
    mid, ex, ey, iod = _face_axes(landmarks)
    centre = mid + 0.55 * iod * ey
    s = scale * size / (3.3 * iod)
    angle = np.degrees(np.arctan2(ex[1], ex[0])) + roll_deg
    m = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle, s)
    m[:, 2] += np.array([size / 2, size / 2]) - centre
    return cv2.warpAffine(photo, m, (size, size), flags=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)


def _shape_morph(landmarks: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    mid, ex, ey, iod = _face_axes(landmarks)
    rel = landmarks - mid
    side = np.sign(rel @ ex)
    p = {"jaw_width": rng.uniform(-0.10, 0.10), "face_length": rng.uniform(-0.08, 0.08),
         "eye_spacing": rng.uniform(-0.05, 0.05), "brow_height": rng.uniform(-0.06, 0.06),
         "nose_length": rng.uniform(-0.05, 0.05), "mouth_width": rng.uniform(-0.07, 0.07)}
    disp = np.zeros_like(landmarks, dtype=np.float64)

    def move(idx, out, down):
        idx = list(idx)
        disp[idx] += (out * side[idx, None] * ex + down * ey) * iod

    move(_JAW, p["jaw_width"], 0.0)
    move(_CHIN + _LOWER_LIP, 0.0, p["face_length"])
    move(RIGHT_EYE + LEFT_EYE, p["eye_spacing"], 0.0)
    move(_INNER_BROW + _MID_BROW + _OUTER_BROW, 0.0, -p["brow_height"])
    move(_NOSE_TIP + _NOSE_WING, 0.0, p["nose_length"])
    move(_LIP_CORNER, p["mouth_width"], 0.0)
    d2 = ((landmarks[:, None] - landmarks[None]) ** 2).sum(-1) / (0.15 * iod) ** 2
    k = np.exp(-0.5 * d2)
    moved = disp.any(1)
    spread = (k[:, moved] @ disp[moved]) / np.maximum(1.0, k[:, moved].sum(1))[:, None]
    return spread.astype(np.float32), {k_: round(float(v), 4) for k_, v in p.items()}


def _skin_and_gamma(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    p = {"lightness": rng.uniform(0.85, 1.1), "a_shift": rng.uniform(-6, 8), "b_shift": rng.uniform(-6, 10),
         "gamma": rng.uniform(0.8, 1.25)}
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    lab[..., 0] *= p["lightness"]
    lab[..., 1] += p["a_shift"]
    lab[..., 2] += p["b_shift"]
    rgb = cv2.cvtColor(np.clip(lab, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB).astype(np.float32) / 255.0
    rgb = 255.0 * rgb ** p["gamma"]
    return np.clip(rgb, 0, 255).astype(np.uint8), {k: round(float(v), 4) for k, v in p.items()}


def make_subjects(photos: list[tuple[str, np.ndarray]], n: int, size: int, seed: int,
                  landmarker: FaceMeshLandmarker) -> list[PseudoSubject]:
    """Build ``n`` pseudo-subjects, cycling over the photos.

    Raises:
        ValueError: a photo has no detectable face (named), or a morph loses the face 20 times.
    """
    base = []
    for name, photo in photos:
        lm = landmarker(photo)
        if lm is None:
            raise ValueError(f"no face found in face photo {name!r}")
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
            raise ValueError(f"could not make pseudo-subject {i + 1} from photo {name!r}: face lost after morphing")
    return subjects


# ----------------------------------------------------------------------------------------------
# clips


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def render_clip(subject: PseudoSubject, cfg: SyntheticConfig, rng: np.random.Generator) -> tuple[list[np.ndarray], dict]:
    """Render one clip of ``subject``.

    Every frame carries the clip's *resting face*: a static deformation made of all AUs (except
    AU45) with random signed weights (standard normal), scaled so that its largest landmark
    displacement is ``cfg.rest_amplitude`` IOD, the same order as the expression. People rest
    with raised brows or down-turned mouth corners, and clips start from residual expressions;
    with it, a single frame shows the class far less clearly than the onset -> apex change.

    Returns:
        (frames, info): T (S, S, 3) uint8 RGB frames and the coding of the clip
        (label, AUs, onset/apex/offset frame indices, amplitude, nuisances).
    """
    label = str(rng.choice(CLASSES, p=CLASS_PROBABILITIES))
    combos = AU_COMBINATIONS[label]
    aus = combos[rng.integers(len(combos))]
    amplitude = rng.uniform(*cfg.amplitude)
    lm = subject.landmarks
    shape = subject.image.shape[:2]
    disp = landmark_displacements(lm, {au: rng.uniform(0.6, 1.0) for au in aus})
    # Scale so that the strongest landmark moves exactly `amplitude` IODs at apex.
    disp *= amplitude * _face_axes(lm)[3] / np.hypot(disp[:, 0], disp[:, 1]).max()
    expr_field = dense_field(lm, disp, shape)
    rest = landmark_displacements(lm, {au: rng.normal() for au in AU_MOTION if au != "AU45"})
    rest *= rng.uniform(*cfg.rest_amplitude) * _face_axes(lm)[3] / max(1e-6, np.hypot(rest[:, 0], rest[:, 1]).max())
    rest_field = dense_field(lm, rest, shape)

    duration = max(6, int(round(rng.uniform(*cfg.duration) * cfg.fps)))
    pre, post = int(rng.integers(3, 9)), int(rng.integers(3, 9))
    onset, offset = pre, pre + duration - 1
    apex = onset + int(round(rng.uniform(0.3, 0.6) * (duration - 1)))
    n = offset + post + 1
    t = np.arange(n, dtype=np.float64)
    profile = np.where(t <= apex, _smoothstep((t - onset) / max(1, apex - onset)),
                       _smoothstep((offset - t) / max(1, offset - apex)))

    fields = [(expr_field, profile), (rest_field, np.ones(n))]
    info = {"label": label, "aus": list(aus), "amplitude_iod": round(float(amplitude), 5),
            "onset": onset, "apex": apex, "offset": offset, "frames": n, "blink": False, "distractor": ""}
    if rng.random() < cfg.blink_probability:
        start, length = rng.integers(0, n - 4), max(4, int(round(rng.uniform(0.1, 0.15) * cfg.fps)))
        bump = np.sin(np.pi * np.clip((t - start) / length, 0, 1)) ** 2
        blink = dense_field(lm, landmark_displacements(lm, {"AU45": rng.uniform(0.08, 0.14)}), shape)
        fields.append((blink, bump))
        info["blink"] = True
    if rng.random() < cfg.distractor_probability:
        au = str(rng.choice([a for a in AU_MOTION if a != "AU45"]))
        d = dense_field(lm, landmark_displacements(lm, {au: amplitude * rng.uniform(0.25, 0.45)}), shape)
        c = int(rng.integers(0, n))
        fields.append((d, np.exp(-0.5 * ((t - c) / (0.06 * cfg.fps)) ** 2)))
        info["distractor"] = au

    drift = rng.uniform(-cfg.drift, cfg.drift, size=2) * t[:, None] / n
    jitter = np.cumsum(rng.normal(0, cfg.jitter, size=(n, 2)), axis=0) + drift
    roll = np.cumsum(rng.normal(0, cfg.roll_jitter, size=n))
    flicker_f, flicker_phase = rng.uniform(1, 10), rng.uniform(0, 2 * np.pi)
    gain = (1 + cfg.flicker * np.sin(2 * np.pi * flicker_f * t / cfg.fps + flicker_phase)
            + rng.normal(0, cfg.flicker / 4, n))
    sigma = rng.uniform(*cfg.noise_sigma)
    centre = (shape[1] / 2, shape[0] / 2)

    frames = []
    for i in range(n):
        field = sum(f * float(w[i]) for f, w in fields)
        a = cv2.getRotationMatrix2D(centre, float(roll[i]), 1.0)
        a[:, 2] += jitter[i]
        img = warp(subject.image, field, a).astype(np.float32) * gain[i]
        img += rng.normal(0, sigma, img.shape).astype(np.float32)
        frames.append(np.clip(img + 0.5, 0, 255).astype(np.uint8))
    return frames, info


# ----------------------------------------------------------------------------------------------
# dataset on disk


def default_cache_dir(override: str | os.PathLike | None = None) -> Path:
    """``override`` if given, else ``$MER_CACHE_DIR``, else ``~/.cache/mer_keras``."""
    if override:
        return Path(override)
    return Path(os.environ.get("MER_CACHE_DIR", Path.home() / ".cache" / "mer_keras"))


def dataset_dir(cfg: SyntheticConfig, photos: list[tuple[str, np.ndarray]], cache_dir: Path | None = None) -> Path:
    """Cache folder of a config: a hash of the generator version, the config and the photos."""
    h = hashlib.sha256(json.dumps({"v": GENERATOR_VERSION, **asdict(cfg)}, sort_keys=True).encode())
    for name, img in photos:
        h.update(name.encode())
        h.update(hashlib.sha256(np.ascontiguousarray(img)).digest())
    return default_cache_dir(cache_dir) / "synthetic" / f"s{cfg.seed}-{cfg.subjects}x{cfg.clips_per_subject}-{h.hexdigest()[:12]}"


def generate(cfg: SyntheticConfig, out: Path, photos: list[tuple[str, np.ndarray]], progress=None) -> Path:
    """Render the whole set into ``out`` (atomically: a temporary folder renamed at the end).

    Processes generating the same set at once (the workers of a multi-worker run) each render into
    their own temporary folder; the first to finish publishes it and the others discard theirs.

    Args:
        progress: optional callable(done, total) called after each clip.
    Returns:
        ``out``, holding ``coding.csv``, ``subjects.json`` and ``subXX/clipYYY/img<N>.jpg``.
    """
    if cfg.subjects < 2 or cfg.clips_per_subject < 1:
        raise ValueError(f"need >= 2 subjects and >= 1 clip each, got {cfg.subjects} x {cfg.clips_per_subject}")
    tmp = out.with_name(out.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _render_all(cfg, tmp, photos, progress)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # never leave a half-made set in the cache
        raise
    if (out / "coding.csv").exists():  # another process (e.g. a second worker) finished the same set first:
        shutil.rmtree(tmp)              # keep its copy, which readers may already be using (same content)
        return out
    if out.exists():
        shutil.rmtree(out)  # an incomplete folder not made by generate()
    try:
        os.replace(tmp, out)
    except OSError:
        if not (out / "coding.csv").exists():
            raise
        shutil.rmtree(tmp)  # lost the race to another process between the check and the rename
    return out


def _render_all(cfg: SyntheticConfig, tmp: Path, photos, progress) -> None:
    import pandas as pd

    landmarker = FaceMeshLandmarker()
    try:
        subjects = make_subjects(photos, cfg.subjects, cfg.frame_size, cfg.seed, landmarker)
    finally:
        landmarker.close()
    rows, total = [], cfg.subjects * cfg.clips_per_subject
    for s_idx, subject in enumerate(subjects):
        for c in range(cfg.clips_per_subject):
            rng = np.random.default_rng([cfg.seed, s_idx, c])
            frames, info = render_clip(subject, cfg, rng)
            clip = f"clip{c + 1:03d}"
            d = tmp / subject.name / clip
            d.mkdir(parents=True)
            for k, frame in enumerate(frames):
                cv2.imwrite(str(d / f"img{k + 1}.jpg"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
            rows.append({"Subject": subject.name, "Filename": clip, "OnsetFrame": info["onset"] + 1,
                         "ApexFrame": info["apex"] + 1, "OffsetFrame": info["offset"] + 1,
                         "Action Units": "+".join(a[2:] for a in info["aus"]),
                         "Estimated Emotion": info["label"], "Frames": info["frames"],
                         "AmplitudeIOD": info["amplitude_iod"], "Blink": info["blink"],
                         "DistractorAU": info["distractor"], "Photo": subject.photo})
            if progress:
                progress(len(rows), total)
    pd.DataFrame(rows).to_csv(tmp / "coding.csv", index=False)
    (tmp / "subjects.json").write_text(json.dumps(
        {"config": asdict(cfg), "subjects": [{"name": s.name, "photo": s.photo, **s.params} for s in subjects]}, indent=1))


def load_samples(root: Path) -> list[Sample]:
    """Read a generated set's coding sheet into :class:`Sample` records.

    Raises:
        FileNotFoundError: ``root/coding.csv`` missing. ValueError: a missing column, an unparsable
        cell, an unknown emotion or a missing frame file (each names the sheet and row).
    """
    import pandas as pd

    sheet = root / "coding.csv"
    if not sheet.exists():
        raise FileNotFoundError(f"synthetic coding sheet {sheet} not found")
    df = pd.read_csv(sheet, dtype={"Subject": str, "Filename": str, "Action Units": str})
    required = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units",
                "Estimated Emotion", "Frames"]
    absent = [c for c in required if c not in df.columns]
    if absent:
        raise ValueError(f"{sheet}: missing column(s) {absent}")
    samples = []
    fps = json.loads((root / "subjects.json").read_text())["config"]["fps"]
    for row_no, r in enumerate(df.to_dict("records"), start=2):
        try:
            n, onset, apex, offset = (int(r[c]) for c in ("Frames", "OnsetFrame", "ApexFrame", "OffsetFrame"))
        except (TypeError, ValueError):
            raise ValueError(f"{sheet}:{row_no}: frame numbers must be integers, got "
                             f"{[r[c] for c in ('Frames', 'OnsetFrame', 'ApexFrame', 'OffsetFrame')]}") from None
        if r["Estimated Emotion"] not in CLASSES:
            raise ValueError(f"{sheet}:{row_no}: unknown emotion {r['Estimated Emotion']!r}; expected one of {CLASSES}")
        clip_dir = root / r["Subject"] / r["Filename"]
        paths = tuple(str(clip_dir / f"img{k}.jpg") for k in range(1, n + 1))
        missing = [p for p in paths if not os.path.exists(p)]
        if missing:
            raise ValueError(f"{sheet}:{row_no}: frame file {missing[0]} is missing")
        aus = tuple(f"AU{a}" for a in str(r["Action Units"]).split("+") if a and a != "nan")
        samples.append(Sample(subject=r["Subject"], clip_id=r["Filename"], frame_paths=paths,
                              onset=onset - 1, apex=apex - 1, offset=offset - 1, aus=aus, emotion=r["Estimated Emotion"],
                              label=r["Estimated Emotion"], database="synthetic", fps=float(fps),
                              source=f"{sheet}:{row_no}"))
    return samples


def synthetic_dataset(cfg: SyntheticConfig | None = None, faces_dir=None, cache_dir: Path | None = None,
                      progress=None) -> tuple[Path, list[Sample]]:
    """Generate (once) and load the synthetic set.

    Returns:
        (folder, samples): the cache folder and one :class:`Sample` per clip, labels in :data:`CLASSES`.
    """
    cfg = cfg or SyntheticConfig()
    photos = load_face_photos(faces_dir)
    out = dataset_dir(cfg, photos, cache_dir)
    if not (out / "coding.csv").exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        generate(cfg, out, photos, progress=progress)
    return out, load_samples(out)
