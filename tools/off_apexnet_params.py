"""Which OFF-ApexNet configuration has the 2.77M parameters the STSTNet paper lists for it?

The project builds OFF-ApexNet as its paper describes it (two streams of conv 5x5/6, pool, conv
5x5/16, pool on the 28 x 28 u and v flow; FC 1024, FC 1024, softmax): 2,664,475 parameters for 3
classes, which ``mer-keras`` checks against Keras. This tool counts every configuration in a grid
of plausible departures (kernel sizes, filter counts, padding, input channels per stream, a third
stream on strain, FC widths, classes, input side) and prints those within a tolerance of 2.77M,
with the grid point of the paper's description as a check.

    python tools/off_apexnet_params.py [--target 2770000] [--tolerance 5000]
"""

from __future__ import annotations

import argparse
import itertools


def count(side=28, kernels=(5, 5), filters=(6, 16), padding="same", channels=1, streams=2, fc=(1024, 1024),
          classes=3) -> int:
    """Parameters of an OFF-ApexNet-like network (conv, 2x2 pool, conv, 2x2 pool per stream; FCs; softmax)."""
    s = side
    for k in kernels:
        s = s if padding == "same" else s - k + 1
        s //= 2
    if s <= 0:
        return -1
    conv = streams * ((kernels[0] ** 2 * channels + 1) * filters[0] + (kernels[1] ** 2 * filters[0] + 1) * filters[1])
    n, total = streams * s * s * filters[1], conv
    for h in fc:
        total += n * h + h
        n = h
    return total + n * classes + classes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", type=int, default=2_770_000)
    ap.add_argument("--tolerance", type=int, default=5_000, help="the paper rounds to 0.01M: +-5,000")
    args = ap.parse_args()
    paper = count()
    print(f"paper's description: {paper:,} (Keras: 2,664,475)")
    grid = itertools.product((24, 28, 32, 56, 64), ((3, 3), (3, 5), (5, 3), (5, 5), (7, 5)),
                             ((6, 16), (8, 16), (6, 32), (16, 16), (16, 32), (32, 32)), ("same", "valid"), (1, 2, 3),
                             (2, 3), ((1024, 1024), (1024,), (2048,), (1024, 512), (512, 512), (1024, 1024, 1024)),
                             (3, 5, 7))
    hits = []
    for side, k, f, pad, ch, st, fc, cl in grid:
        n = count(side, k, f, pad, ch, st, fc, cl)
        if abs(n - args.target) <= args.tolerance:
            hits.append((abs(n - args.target), n, dict(side=side, kernels=k, filters=f, padding=pad, channels=ch,
                                                       streams=st, fc=fc, classes=cl)))
    print(f"{len(hits)} configuration(s) within {args.tolerance:,} of {args.target:,}:")
    for _, n, cfg in sorted(hits, key=lambda h: h[0]):
        print(f"  {n:,}  {cfg}")


if __name__ == "__main__":
    main()
