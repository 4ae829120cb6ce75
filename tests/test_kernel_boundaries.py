"""Every code path of the blocked Numba kernels, on shapes chosen to sit below, at and above each boundary (issue 19).

Random shapes rarely cross these: the affine coupling's log-det multiplies LOG_PRODUCT_RUN factors before each log
(the tail run is shorter), and the 1x1 convolution switches from its loops to BLAS above MAP_LOOP_MAX_CHANNELS and
WEIGHT_LOOP_MAX_CHANNELS. Each is compared with its NumPy twin, float64 to 1e-12 and float32 to a few ulp of the
sum it forms.
"""
import numpy as np
import pytest

from nflow.kernels.cpu import affine_coupling as cpu_affine
from nflow.kernels.cpu import invconv as cpu_invconv
from nflow.kernels.cpu.affine_coupling import LOG_PRODUCT_RUN
from nflow.kernels.cpu.invconv import MAP_LOOP_MAX_CHANNELS, WEIGHT_LOOP_MAX_CHANNELS
from nflow.kernels.reference import affine_coupling as ref_affine
from nflow.kernels.reference import invconv as ref_invconv

DTYPES = [np.float32, np.float64]


def around(boundary):
    """One below, at, one above, and the second run's edges: every branch and every tail length class."""
    return sorted({max(boundary - 1, 1), boundary, boundary + 1, 2 * boundary, 2 * boundary + 1})


def tolerance(dtype, terms):
    eps = np.finfo(dtype).eps
    return (1e-12, 1e-12) if dtype == np.float64 else (16 * eps, 16 * eps * terms)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("form", ["sigmoid", "exp"])
@pytest.mark.parametrize("m", around(LOG_PRODUCT_RUN))
def test_affine_coupling_log_det_runs(dtype, form, m):
    rng = np.random.default_rng(m)
    # h spread so that u = h + 2 takes both signs (the kernel's two branches) within every run
    x, h, t = (rng.standard_normal((3, m)) * 3).astype(dtype), (rng.standard_normal((3, m)) * 4).astype(dtype), \
        rng.standard_normal((3, m)).astype(dtype)
    rtol, atol = tolerance(dtype, m)
    for name in ("forward", "inverse"):
        got_y, got_ld = getattr(cpu_affine, name)(x, h, t, form)
        want_y, want_ld = getattr(ref_affine, name)(x, h, t, form)
        np.testing.assert_allclose(got_y, want_y, rtol=rtol, atol=rtol)
        np.testing.assert_allclose(got_ld, want_ld, rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c", sorted(set(around(MAP_LOOP_MAX_CHANNELS) + around(WEIGHT_LOOP_MAX_CHANNELS))))
def test_invconv_loop_and_blas_paths(dtype, c):
    rng = np.random.default_rng(c)
    x = rng.standard_normal((2, c, 3, 5)).astype(dtype)
    w = (np.eye(c) + 0.3 * rng.standard_normal((c, c))).astype(dtype)
    gy = rng.standard_normal(x.shape).astype(dtype)
    rtol, _ = tolerance(dtype, c)
    np.testing.assert_allclose(cpu_invconv.forward(x, w), ref_invconv.forward(x, w), rtol=rtol * c, atol=rtol * c)
    for got, want in zip(cpu_invconv.backward(x, w, gy), ref_invconv.backward(x, w, gy)):
        # ∂L/∂W sums N·H·W = 30 products per entry
        np.testing.assert_allclose(got, want, rtol=rtol * 30, atol=rtol * 30)


def test_the_boundaries_are_where_the_tests_look():
    # if a constant moves, the shapes above move with it; this pins that the paths still exist
    assert LOG_PRODUCT_RUN > 1 and 1 <= MAP_LOOP_MAX_CHANNELS < WEIGHT_LOOP_MAX_CHANNELS
