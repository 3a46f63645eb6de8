"""The data path gives the same bits on every x86-64 CPU (issue 30).

numpy's AVX-512 kernels (exp, log, power, arctan2), OpenBLAS's per-CPU matrix kernels and
OpenCV's AVX-512 dispatch change floats in their last bits; through uint8 rounding, JPEG
encoding, face-mesh landmarks and min-max scaling those bits changed whole pixels of the synthetic
set and every figure trained on it. :mod:`mer_keras.preprocess.portable` replaces them in the data
path; the subprocess test below makes the libraries pick other kernels (what an AVX2 CPU would
run) and checks that the frames and the network inputs keep every bit.
"""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from mer_keras.preprocess import portable

#: Kernel choices of a CPU without AVX-512, forced on this one (where it has AVX-512).
AVX2_KERNELS = {"NPY_DISABLE_CPU_FEATURES": "AVX512F AVX512CD AVX512_KNL AVX512_KNM AVX512_SKX AVX512_CLX "
                                            "AVX512_CNL AVX512_ICL",
                "OPENBLAS_CORETYPE": "Haswell",
                "OPENCV_CPU_DISABLE": "AVX512_SKX,AVX512_COMMON,AVX512_KNL,AVX512_KNM,AVX512_CNL,AVX512_CLX"}


def test_portable_functions_agree_with_their_definitions():
    rng = np.random.default_rng(0)
    x = rng.uniform(-5, 5, (7, 3))
    np.testing.assert_array_equal(portable.exp(x), np.vectorize(math.exp)(x))
    np.testing.assert_array_equal(portable.sin(x), np.vectorize(math.sin)(x))
    assert portable.exp([1000.0])[0] == math.inf  # overflow is inf, as numpy's
    lut = portable.power_lut(0.8)
    assert lut[0] == 0.0 and lut[255] == 255.0 and lut[128] == 255.0 * math.pow(128 / 255.0, 0.8)
    with pytest.raises(ValueError, match="gamma must be a finite number > 0"):
        portable.power_lut(0.0)
    a, b = rng.normal(size=(5, 4, 9)), rng.normal(size=(9, 2))
    np.testing.assert_allclose(portable.matmul(a, b), a @ b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(portable.matmul(a, b[:, 0]), a @ b[:, 0], rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="cannot multiply"):
        portable.matmul(a, b.T)
    basis = np.stack([rng.uniform(-1, 1, 50), rng.uniform(-1, 1, 50), np.ones(50)], 1)
    np.testing.assert_allclose(portable.least_squares_projector(basis), np.linalg.pinv(basis), atol=1e-12)
    with pytest.raises(ValueError, match="linearly dependent"):
        portable.least_squares_projector(np.stack([basis[:, 0], 2 * basis[:, 0]], 1))
    frames = rng.integers(0, 256, (6, 4, 4, 3)).astype(np.uint8)
    w = rng.normal(size=6)
    np.testing.assert_allclose(portable.weighted_sum(w, frames), np.tensordot(w, frames.astype(float), 1), atol=1e-9)


_DATA_PATH = """
import sys
from pathlib import Path
import mer_keras
from mer_keras.data.synthetic import SyntheticConfig, synthetic_dataset
from tests.unit.test_portable import digest
print(digest(synthetic_dataset(SyntheticConfig(subjects=3, clips_per_subject=4, seed=7), cache_dir=Path(sys.argv[1]))[1]))
"""


def digest(samples) -> str:
    """sha256 of the clips' frame files and of three representations built from them."""
    from pathlib import Path

    from mer_keras.data.pipeline import RepresentationConfig, build_inputs

    h = hashlib.sha256()
    for s in samples:
        for p in s.frame_paths:
            h.update(Path(p).read_bytes())
    for cfg in (RepresentationConfig(), RepresentationConfig(representation="flow", size=28, flow_method="dis"),
                RepresentationConfig(representation="apex", size=32, channels=1)):
        h.update(np.ascontiguousarray(build_inputs(samples[:6], cfg)).tobytes())
    return h.hexdigest()


def test_the_data_path_keeps_every_bit_when_the_libraries_pick_other_kernels(tiny_synthetic, tmp_path):
    """The synthetic set of ``tiny_synthetic`` rendered again, aligned, and made into dynamic images,
    flow images and grayscale apex frames with numpy's and OpenCV's AVX-512 kernels off and
    OpenBLAS on its Haswell kernels is bit-identical to this process's (where the CPU has no
    AVX-512, both use the same kernels and agree trivially). With numpy's exp and OpenBLAS's
    products in the renderer, the frames differed."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    res = subprocess.run([sys.executable, "-c", _DATA_PATH, str(tmp_path)], capture_output=True, text=True,
                         env={**os.environ, **AVX2_KERNELS, "PYTHONPATH": str(root)}, timeout=600, cwd=root)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip().splitlines()[-1] == digest(tiny_synthetic[1])
