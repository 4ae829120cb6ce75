"""The vectorisable exp of the Numba kernels (kernels/cpu/vector_exp.py) against the C library."""
import math

import numpy as np


def test_vector_exp_matches_the_c_library_to_2_ulp():
    from numba import njit

    from nflow.kernels.cpu.vector_exp import EXP_MAX, EXP_MIN, exp

    @njit
    def apply(a, out):
        for i in range(a.size):
            out[i] = exp(a[i])

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-745, 710, 20000), rng.uniform(-3, 3, 20000), [0.0, 1.0, -1.0, EXP_MIN,
                                                                                  EXP_MAX, 709.78]])
    out = np.empty_like(x)
    apply(x, out)
    with np.errstate(over="ignore", under="ignore"):
        expected = np.array([math.exp(v) if v < 709.79 else math.inf for v in x])
    normal = (x >= EXP_MIN) & (x <= EXP_MAX)
    ulps = np.abs(out[normal] - expected[normal]) / np.spacing(expected[normal])
    assert ulps.max() <= 2, f"max error {ulps.max()} ulp"
    assert np.all(out[x < EXP_MIN] == 0.0)
    special = np.array([np.inf, -np.inf, np.nan, 710.0, -750.0])
    out = np.empty_like(special)
    apply(special, out)
    assert out[0] == np.inf and out[1] == 0.0 and np.isnan(out[2]) and out[3] == np.inf and out[4] == 0.0
