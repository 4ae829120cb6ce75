"""im2col / col2im of the convolutions (kernels/reference/conv.py): the definition, the adjoint, strided views."""
import numpy as np
import pytest
from hypothesis import given, settings

from kernel_helpers import DTYPES, EXAMPLES, shapes_4d, seeds, draw
from nflow.kernels import dispatch
from nflow.kernels.reference import conv as ref_conv


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [1, 3, 5])
@settings(max_examples=EXAMPLES)
@given(shape=shapes_4d, seed=seeds)
def test_im2col_reads_strided_views(dtype, k, shape, seed):
    rng = np.random.default_rng(seed)
    x = draw(rng, shape, dtype)  # read as (C, N, H, W)
    cols = ref_conv.im2col(x, k)
    assert cols.shape == (shape[0] * k * k, shape[1] * shape[2] * shape[3])  # (C·k², N·H·W), as ops/conv.py
    # a strided view (an NCHW array seen as CNHW) gives the same columns
    view = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    np.testing.assert_array_equal(ref_conv.im2col(view, k), cols)


def test_im2col_against_its_definition():
    # cols[(c, i, j), (n, h, w)] = x[c, n, h + i - p, w + j - p], 0 outside: element by element, independent
    rng = np.random.default_rng(5)
    c, n, h, w, k = 2, 2, 4, 3, 3
    x = rng.standard_normal((c, n, h, w))
    want = np.zeros((c * k * k, n * h * w))
    for ci in range(c):
        for i in range(k):
            for j in range(k):
                for ni in range(n):
                    for hi in range(h):
                        for wi in range(w):
                            hs, ws = hi + i - k // 2, wi + j - k // 2
                            if 0 <= hs < h and 0 <= ws < w:
                                want[(ci * k + i) * k + j, (ni * h + hi) * w + wi] = x[ci, ni, hs, ws]
    np.testing.assert_array_equal(ref_conv.im2col(x, k), want)


def test_col2im_is_the_adjoint_of_im2col():
    # <im2col(x), c> = <x, col2im(c)>: independent of the twins
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 5, 4))
    c = rng.standard_normal((18, 60))
    np.testing.assert_allclose(np.vdot(ref_conv.im2col(x, 3), c), np.vdot(x, ref_conv.col2im(c, x.shape, 3)),
                               rtol=1e-12)


def test_conv_runs_im2col_on_numpy_and_the_shifted_gemms_on_the_cpu_backend():
    from nflow.kernels.cpu import conv as cpu_conv
    assert dispatch.kernel_module("conv", "numpy") is ref_conv
    assert dispatch.kernel_module("conv", "numba") is cpu_conv
