"""Peaks of the spotting signal: step 5 of :mod:`mer_keras.runtime.spotting`'s method.

A threshold relative to the video's own signal (:func:`robust_threshold`) and the runs above it,
each with its apex, onset and offset (:func:`find_intervals`). TF-free: numpy only.
"""

from __future__ import annotations

import numpy as np


def robust_threshold(values: np.ndarray, z: float) -> tuple[float, float]:
    """(median, median + z * 1.4826 * MAD) of the finite ``values``; (0, inf) when there are none."""
    v = values[np.isfinite(values)]
    if v.size == 0:
        return 0.0, float("inf")
    med = float(np.median(v))
    mad = float(np.median(np.abs(v - med)))
    return med, med + z * 1.4826 * max(mad, 1e-6)


def find_intervals(signal: np.ndarray, start: int, stop: int, baseline: float, threshold: float,
                   edge: float) -> list[tuple[int, int, int, float]]:
    """Runs of ``signal[start:stop]`` above ``threshold``, each as (onset, apex, offset, peak / threshold).

    The apex is the run's maximum; onset and offset extend outwards, within ``start..stop-1``
    (NaN stops them), while the signal stays above ``baseline + edge * (peak - baseline)``. Runs
    whose extents overlap are merged. Indices are into ``signal``.
    """
    s = np.nan_to_num(np.asarray(signal[:stop], np.float64), nan=-np.inf)
    above = s[start:] > threshold
    out: list[list] = []
    i = 0
    while i < len(above):
        if not above[i]:
            i += 1
            continue
        j = i
        while j < len(above) and above[j]:
            j += 1
        apex = start + i + int(np.argmax(s[start + i:start + j]))
        level = baseline + edge * (s[apex] - baseline)
        on = apex
        while on > start and s[on - 1] > level:
            on -= 1
        off = apex
        while off < len(s) - 1 and s[off + 1] > level:
            off += 1
        score = float(s[apex] / threshold) if threshold > 0 else float("inf")
        if out and on <= out[-1][2]:  # overlaps the previous run's extent: one expression
            prev = out[-1]
            if s[apex] > s[prev[1]]:
                prev[1], prev[3] = apex, score
            prev[2] = max(prev[2], off)
        else:
            out.append([on, apex, off, score])
        i = max(j, off + 1)
    return [tuple(x) for x in out]
