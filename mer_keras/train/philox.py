"""TensorFlow's stateless random numbers for many seeds at once, in numpy, bit for bit.

:func:`~mer_keras.train.tfdata.training_dataset` draws one flip coin per sample and epoch with
``tf.random.stateless_uniform((), seed=(seed, e * N + i + 1))`` (and shifts with the int form):
one TensorFlow op per sample, about 13 us each, which for the 68 folds of a composite LOSO is a
third of a second of CPU per epoch. The folded program (:mod:`mer_keras.train.vectorized`) needs
the same numbers for every fold and epoch: here they are computed for all seeds in a few
vectorised numpy passes, exactly as TensorFlow 2.19's CPU kernels compute them (Philox4x32-10;
the seed scrambled as ``tensorflow/python/ops/random_ops_util._philox_scramble_seed`` does; a
float from the low 23 bits). tests/unit/test_philox.py compares them with TensorFlow's.

Source: Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011 (Philox4x32-10).
"""

from __future__ import annotations

import numpy as np

_M_A, _M_B = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_W_A, _W_B = np.uint32(0x9E3779B9), np.uint32(0xBB67AE85)
_LOW = np.uint64(0xFFFFFFFF)
#: The key TensorFlow scrambles a seed with (``_philox_scramble_seed``), as two 32-bit words.
_SCRAMBLE_KEY = np.array([0x3EC8F720, 0x02461E29], np.uint32)


def philox(counter: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Philox4x32-10 of M counters under M keys.

    Args:
        counter: (M, 4) uint32. key: (M, 2) uint32.
    Returns:
        (M, 4) uint32, the first block of random words.
    """
    c = np.asarray(counter, np.uint32)
    k = np.asarray(key, np.uint32).copy()
    for r in range(10):
        p0 = _M_A * c[:, 0].astype(np.uint64)
        p1 = _M_B * c[:, 2].astype(np.uint64)
        c = np.stack([(p1 >> np.uint64(32)).astype(np.uint32) ^ c[:, 1] ^ k[:, 0], (p1 & _LOW).astype(np.uint32),
                      (p0 >> np.uint64(32)).astype(np.uint32) ^ c[:, 3] ^ k[:, 1], (p0 & _LOW).astype(np.uint32)],
                     axis=1)
        if r < 9:
            k += np.array([_W_A, _W_B], np.uint32)
    return c


def _words(seeds: np.ndarray) -> np.ndarray:
    """(M, 2) int64 seeds -> (M, 4) uint32: each seed's two int64 as low, high 32-bit words."""
    s = np.asarray(seeds, np.int64).astype(np.uint64)
    return np.stack([s[:, 0] & _LOW, s[:, 0] >> np.uint64(32), s[:, 1] & _LOW, s[:, 1] >> np.uint64(32)],
                    axis=1).astype(np.uint32)


def random_words(seeds) -> np.ndarray:
    """The first 4 random uint32 words of ``tf.random.stateless_*`` for each seed pair.

    Args:
        seeds: (M, 2) integers (TensorFlow's ``seed`` argument, one pair per row).
    Returns:
        (M, 4) uint32.
    """
    seeds = np.asarray(seeds, np.int64).reshape(-1, 2)
    mix = philox(_words(seeds), np.tile(_SCRAMBLE_KEY, (len(seeds), 1)))
    counter = np.zeros((len(seeds), 4), np.uint32)
    counter[:, 2:] = mix[:, 2:]
    return philox(counter, mix[:, :2])


def stateless_uniform_scalars(seeds) -> np.ndarray:
    """``tf.random.stateless_uniform((), seed=s)`` (float32 in [0, 1)) for each seed pair ``s``.

    Returns:
        (M,) float32.
    """
    x = random_words(seeds)[:, 0]
    return ((x & np.uint32(0x7FFFFF)) | np.uint32(0x3F800000)).view(np.float32) - np.float32(1.0)


def stateless_uniform_int_pairs(seeds, minval: int, maxval: int) -> np.ndarray:
    """``tf.random.stateless_uniform((2,), seed=s, minval, maxval, dtype=tf.int32)`` for each seed pair.

    Returns:
        (M, 2) int32 in [minval, maxval).
    """
    x = random_words(seeds)[:, :2]
    return (minval + (x % np.uint32(maxval - minval)).astype(np.int64)).astype(np.int32)
