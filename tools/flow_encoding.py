"""What the two flow encodings do to a small motion: levels used at 28 px, and after int8 input quantization.

A textured 128 x 128 face-sized image is moved by a known sub-pixel amount (measured in pixels of
the 28 x 28 network input, as the flow is rescaled to it), both frames get sensor noise, TV-L1
flow and strain are computed at 128 px as the pipeline does, and the (u, v, strain) image is
encoded at 28 px with ``--flow-encoding fixed`` (127.5 + 127.5 clip(u / 8 px)) and ``minmax``
(each channel stretched to 0..255, the published composite's encoding). For each motion it
prints how many distinct 8-bit levels the u channel spans once stored as uint8 (the PNG, and the
int8 TFLite input, whose quantization here is q = x - 128: one level per unit), and the mean u
value in the moving square against the still background, in levels.

    python tools/flow_encoding.py [--repeats 5]
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from mer_keras.preprocess.flow import encode_flow, optical_flow, optical_strain


def frames(shift_28: float, rng: np.random.Generator, noise: float = 1.0, size: int = 128):
    """An onset frame and its apex: the central square moved right by ``shift_28`` pixels at 28 px."""
    tex = cv2.GaussianBlur(rng.normal(size=(size, size)).astype(np.float32), (0, 0), 2.0)
    tex = (tex - tex.min()) / (tex.max() - tex.min()) * 180 + 40
    shift = shift_28 * size / 28.0
    moved = cv2.warpAffine(tex, np.float32([[1, 0, shift], [0, 1, 0]]), (size, size), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT)
    apex = tex.copy()
    q = slice(size // 4, 3 * size // 4)
    apex[q, q] = moved[q, q]
    onset = np.clip(tex + rng.normal(0, noise, tex.shape), 0, 255).astype(np.uint8)
    apex = np.clip(apex + rng.normal(0, noise, tex.shape), 0, 255).astype(np.uint8)
    return np.dstack([onset] * 3), np.dstack([apex] * 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5, help="random textures per motion (medians are printed)")
    args = ap.parse_args()
    print("| motion at 28 px | encoding | u levels used (uint8) | u inside - outside (levels) |")
    print("|---|---|---|---|")
    for shift in (0.0, 0.05, 0.1, 0.25, 0.5, 1.0):
        per = {"fixed": [], "minmax": []}
        for r in range(args.repeats):
            onset, apex = frames(shift, np.random.default_rng(r))
            flow = optical_flow(onset, apex, "tvl1")
            strain = optical_strain(flow)
            for enc in per:
                img = np.round(encode_flow(flow, strain, 28, encoding=enc)).astype(np.uint8)
                u = img[..., 0].astype(np.float32)
                inside = u[7:21, 7:21].mean()
                outside = np.concatenate([u[:5].ravel(), u[-5:].ravel()]).mean()
                per[enc].append((len(np.unique(img[..., 0])), inside - outside))
        for enc, vals in per.items():
            levels, contrast = np.median(np.array(vals), axis=0)
            print(f"| {shift:g} px | {enc} | {levels:.0f} | {contrast:+.1f} |")


if __name__ == "__main__":
    main()
