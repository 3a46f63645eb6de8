"""Arithmetic that gives the same bits on every x86-64 CPU, for the data path.

numpy and its OpenBLAS choose their kernels by the CPU they run on. With AVX-512, numpy 1.26's
``exp``, ``log``, ``expm1``, ``arctan2`` and ``power`` (float64; ``power`` also float32) and
OpenBLAS's matrix products (``@``, ``np.dot``, ``np.tensordot``) return values that differ in the
last bits from those of an AVX2 CPU. In the synthetic renderer those bits decide how a pixel
rounds to uint8, so the rendered frames, the face-mesh landmarks found on them, the aligned crops,
the flow images and every figure trained on them differed between CPU kinds
(``tools/check_cpu_kinds.py`` shows it stage by stage; docs/RELIABILITY.md).

The functions here use only what every x86-64 CPU computes alike: the C library's scalar
``exp``/``sin``/``cos``/``pow`` through :mod:`math` (the same code on every CPU with AVX2 and
FMA, i.e. Intel since 2013 and AMD since 2015), and element-wise IEEE multiplication and addition
in a fixed order (no fused multiply-add, no reassociation). They are slower than numpy's vector
kernels, so they are used only where the data are made, on arrays of at most a few hundred
thousand values, never in training or inference.
"""

from __future__ import annotations

import math

import numpy as np


def _elementwise(fn, x) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    out = np.fromiter(map(fn, a.ravel().tolist()), dtype=np.float64, count=a.size)
    return out.reshape(a.shape)


def exp(x) -> np.ndarray:
    """e**x element-wise.

    Args:
        x: array-like of real numbers, any shape.
    Returns:
        float64 array of ``x``'s shape (``inf`` where x > 709.78; never raises on overflow).
    """
    def safe_exp(v: float) -> float:
        try:
            return math.exp(v)
        except OverflowError:
            return math.inf
    return _elementwise(safe_exp, x)


def sin(x) -> np.ndarray:
    """sin(x) element-wise, x in radians; float64 array of ``x``'s shape."""
    return _elementwise(math.sin, x)


def cos(x) -> np.ndarray:
    """cos(x) element-wise, x in radians; float64 array of ``x``'s shape."""
    return _elementwise(math.cos, x)


def power_lut(gamma: float) -> np.ndarray:
    """255 * (v / 255) ** gamma for the 256 uint8 values v: index it with a uint8 image.

    Returns:
        (256,) float64 in [0, 255] for gamma > 0.
    Raises:
        ValueError: gamma is not a finite number > 0.
    """
    if not (math.isfinite(gamma) and gamma > 0):
        raise ValueError(f"gamma must be a finite number > 0, got {gamma}")
    return np.array([255.0 * math.pow(v / 255.0, gamma) for v in range(256)], dtype=np.float64)


def matmul(a, b) -> np.ndarray:
    """a @ b without BLAS: element-wise products summed by numpy's ``add.reduce`` over the inner axis.

    The summation order depends only on the shapes, so every CPU gives the same bits (BLAS kernels
    differ per CPU in how they split and fuse the sums).

    Args:
        a: (..., K) real array. b: (K, M) or (K,) real array.
    Returns:
        (..., M) or (...) float64.
    Raises:
        ValueError: the inner sizes differ or K is 0.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape[-1] != b.shape[0] or b.shape[0] == 0:
        raise ValueError(f"cannot multiply shapes {a.shape} and {b.shape}")
    if b.ndim == 1:
        return np.add.reduce(a * b, axis=-1)
    return np.add.reduce(a[..., :, None] * b, axis=-2)


def least_squares_projector(basis) -> np.ndarray:
    """P = (B^T B)^-1 B^T, so that P @ y is the least-squares fit of y on the columns of B.

    Computed without LAPACK (Gauss-Jordan on the small normal matrix in Python floats, partial
    pivoting), so that every CPU gives the same bits.

    Args:
        basis: (N, P) real array of full column rank, P <= 8 (a few regressors).
    Returns:
        (P, N) float64.
    Raises:
        ValueError: more than 8 columns, or the columns are linearly dependent.
    """
    b = np.asarray(basis, dtype=np.float64)
    cols = b.shape[1]
    if cols > 8:
        raise ValueError(f"least_squares_projector is for a few regressors, got {cols}")
    normal = matmul(b.T, b).tolist()
    inv = [[float(i == j) for j in range(cols)] for i in range(cols)]
    for c in range(cols):
        pivot = max(range(c, cols), key=lambda r: abs(normal[r][c]))
        if abs(normal[pivot][c]) < 1e-12 * max(1.0, max(abs(v) for row in normal for v in row)):
            raise ValueError("the basis columns are linearly dependent")
        normal[c], normal[pivot] = normal[pivot], normal[c]
        inv[c], inv[pivot] = inv[pivot], inv[c]
        d = normal[c][c]
        normal[c] = [v / d for v in normal[c]]
        inv[c] = [v / d for v in inv[c]]
        for r in range(cols):
            if r != c and normal[r][c] != 0.0:
                f = normal[r][c]
                normal[r] = [v - f * w for v, w in zip(normal[r], normal[c])]
                inv[r] = [v - f * w for v, w in zip(inv[r], inv[c])]
    return matmul(np.array(inv), b.T)


def weighted_sum(weights, stack) -> np.ndarray:
    """sum_t weights[t] * stack[t], accumulated in float64 in the order t = 0, 1, ...

    Args:
        weights: (T,) real. stack: (T, ...) real (uint8 or float), T >= 1.
    Returns:
        float64 array of ``stack.shape[1:]``.
    Raises:
        ValueError: the lengths differ or T is 0.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or len(w) != len(stack) or len(w) == 0:
        raise ValueError(f"need one weight per item: {w.shape} weights for {len(stack)} items")
    out = w[0] * np.asarray(stack[0], dtype=np.float64)
    for t in range(1, len(w)):
        out += w[t] * np.asarray(stack[t], dtype=np.float64)
    return out
