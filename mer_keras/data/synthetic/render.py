"""One clip: a pseudo-subject's face performing one micro-expression, with its nuisances."""

from __future__ import annotations

import cv2
import numpy as np

from mer_keras.data.synthetic.config import CLASS_PROBABILITIES, CLASSES, SyntheticConfig
from mer_keras.data.synthetic.faces import PseudoSubject
from mer_keras.data.synthetic.mesh import face_axes
from mer_keras.data.synthetic.warping import AU_MOTION, dense_field, landmark_displacements, warp
from mer_keras.facs import AU_COMBINATIONS
from mer_keras.preprocess import portable


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def render_clip(subject: PseudoSubject, cfg: SyntheticConfig,
                rng: np.random.Generator) -> tuple[list[np.ndarray], dict]:
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
    disp *= amplitude * face_axes(lm)[3] / np.hypot(disp[:, 0], disp[:, 1]).max()
    expr_field = dense_field(lm, disp, shape)
    rest = landmark_displacements(lm, {au: rng.normal() for au in AU_MOTION if au != "AU45"})
    rest *= rng.uniform(*cfg.rest_amplitude) * face_axes(lm)[3] / max(1e-6, np.hypot(rest[:, 0], rest[:, 1]).max())
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
        bump = portable.sin(np.pi * np.clip((t - start) / length, 0, 1)) ** 2
        blink = dense_field(lm, landmark_displacements(lm, {"AU45": rng.uniform(0.08, 0.14)}), shape)
        fields.append((blink, bump))
        info["blink"] = True
    if rng.random() < cfg.distractor_probability:
        au = str(rng.choice([a for a in AU_MOTION if a != "AU45"]))
        d = dense_field(lm, landmark_displacements(lm, {au: amplitude * rng.uniform(0.25, 0.45)}), shape)
        c = int(rng.integers(0, n))
        fields.append((d, portable.exp(-0.5 * ((t - c) / (0.06 * cfg.fps)) ** 2)))
        info["distractor"] = au

    drift = rng.uniform(-cfg.drift, cfg.drift, size=2) * t[:, None] / n
    jitter = np.cumsum(rng.normal(0, cfg.jitter, size=(n, 2)), axis=0) + drift
    roll = np.cumsum(rng.normal(0, cfg.roll_jitter, size=n))
    flicker_f, flicker_phase = rng.uniform(1, 10), rng.uniform(0, 2 * np.pi)
    gain = (1 + cfg.flicker * portable.sin(2 * np.pi * flicker_f * t / cfg.fps + flicker_phase)
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
