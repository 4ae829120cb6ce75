"""Shared pieces of the kernel tests (tests/test_kernels_<family>.py): dtypes, tolerances, shapes, comparison.

Numba kernels (kernels/cpu) run for hypothesis-drawn shapes (4-D: N 1-3, C 1-4, H, W 1-5; 2-D: N 1-3, D 1-8) in
both dtypes; the CUDA kernels (kernels/cuda) run the same comparisons on a GPU (``gpu`` marker, skipped without
one).

Tolerances, per dtype: kernels and twins compute the same formulas in the array's dtype but in a different
order, with different exp implementations (the kernels' ``vector_exp``, ≤ 2 ulp) and with the kernels' sums in
float64, so in float32 the two differ by a few float32 roundings of each intermediate: RTOL/ATOL below are
~100 float32 ulps (2⁻²³ ≈ 1.2e-7). In float64 both sides are near exact: 1e-12. Sums over M elements
(log-dets, per-channel gradients) carry M such roundings, so their absolute tolerance is scaled by M
(``scale=``).
"""
import math
import os
import subprocess
import sys

import numpy as np
from hypothesis import strategies as st


RTOL = {np.float32: 1e-5, np.float64: 1e-12}
ATOL = {np.float32: 1e-5, np.float64: 1e-12}
DTYPES = [np.float32, np.float64]
EXAMPLES = 20  # per test; each example is microseconds once compiled, so the count is about coverage
shapes_4d = st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 5), st.integers(1, 5))
shapes_2d = st.tuples(st.integers(1, 3), st.integers(1, 8))
shapes = st.one_of(shapes_4d, shapes_2d)
seeds = st.integers(0, 2 ** 32 - 1)


def assert_close(actual, expected, dtype, scale=1.0, what=""):
    assert actual.dtype == expected.dtype == dtype, f"{what}: dtypes {actual.dtype} vs {expected.dtype}"
    assert actual.shape == expected.shape, f"{what}: shapes {actual.shape} vs {expected.shape}"
    np.testing.assert_allclose(actual, expected, rtol=RTOL[dtype], atol=ATOL[dtype] * scale, err_msg=what)


def draw(rng, shape, dtype, spread=1.0):
    return (spread * rng.standard_normal(shape)).astype(dtype)


def elements_per_sample(shape):
    return math.prod(shape[1:])


def draw_array(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def assert_same(actual, expected, dtype, what):
    """Exact equality, with dtype and shape checked first (assert_array_equal alone would broadcast)."""
    assert actual.dtype == expected.dtype == dtype, f"{what}: dtypes {actual.dtype} vs {expected.dtype}"
    assert actual.shape == expected.shape, f"{what}: shapes {actual.shape} vs {expected.shape}"
    np.testing.assert_array_equal(actual, expected, err_msg=what)


def assert_runs_with_jit_disabled(code):
    """Run ``code`` (which prints "ok" at its end) in a fresh Python with NUMBA_DISABLE_JIT=1: the Numba loops then
    run as plain Python, the way a reader steps through them, and must still compute the twins' values."""
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
