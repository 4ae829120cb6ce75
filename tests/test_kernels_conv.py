"""The CPU convolution (kernels/cpu/conv.py: k² GEMMs over shifted windows of the padded input) against its twin
(kernels/reference/conv.py: im2col and one GEMM, a different algorithm), and the windowed GEMM it is built on
(kernels/cpu/blas.py) against numpy.matmul.

Tolerances: both sides sum the same C·k² products per output in different orders, so the difference is a few
roundings of the largest partial sum: relative 1e-12 in float64, 1e-5 in float32 (C·k² ≤ 5·25 terms here).
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nflow.kernels.cpu import blas
from nflow.kernels.cpu import conv as cpu_conv
from nflow.kernels.reference import conv as ref_conv

RTOL = {np.float32: 1e-5, np.float64: 1e-12}
needs_blas = pytest.mark.skipif(not blas.AVAILABLE, reason=f"windowed GEMM unavailable: {blas.UNAVAILABLE_REASON}")


def _close(got, want, dtype):
    scale = max(float(np.abs(want).max()), 1.0)
    np.testing.assert_allclose(got, want, rtol=0, atol=RTOL[dtype] * scale)


@needs_blas
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 3), c_in=st.integers(1, 5), c_out=st.integers(1, 5), h=st.integers(1, 7),
       w=st.integers(1, 7), k=st.sampled_from([3, 5]), seed=st.integers(0, 2 ** 32 - 1))
def test_shifted_gemm_convolution_matches_the_im2col_twin(dtype, n, c_in, c_out, h, w, k, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((c_in, n, h, w)).astype(dtype)
    wt = rng.standard_normal((c_out, c_in, k, k)).astype(dtype)
    gy = rng.standard_normal((c_out, n, h, w)).astype(dtype)
    y = cpu_conv.shifted_forward(x, wt)
    assert y.dtype == dtype and y.shape == (c_out, n, h, w) and y.flags.c_contiguous
    _close(y, ref_conv.forward(x, wt, backward_follows=True), dtype)
    gx, gw = cpu_conv.shifted_backward(x, wt, gy)
    gx_ref, gw_ref = ref_conv.backward(x, wt, gy)
    assert gx.shape == x.shape and gw.shape == wt.shape and gx.flags.c_contiguous and gw.flags.c_contiguous
    _close(gx, gx_ref, dtype)
    _close(gw, gw_ref, dtype)


@needs_blas
def test_the_anchor_margins_never_leak_between_images():
    """Each image alone gives the same output as in the batch: the dropped anchors (right and bottom margins,
    which mix neighbouring images) must not reach the kept corner, nor their gradient the weights."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 5, 4))
    wt = rng.standard_normal((4, 2, 3, 3))
    gy = rng.standard_normal((4, 3, 5, 4))
    y = cpu_conv.shifted_forward(x, wt)
    _, gw = cpu_conv.shifted_backward(x, wt, gy)
    gw_sum = np.zeros_like(gw)
    for i in range(3):
        np.testing.assert_allclose(y[:, i:i + 1], cpu_conv.shifted_forward(x[:, i:i + 1], wt), rtol=1e-13,
                                   atol=1e-13)
        gw_sum += cpu_conv.shifted_backward(x[:, i:i + 1], wt, gy[:, i:i + 1], need_x=False)[1]
    np.testing.assert_allclose(gw, gw_sum, rtol=1e-12, atol=1e-12)


@needs_blas
def test_reads_a_strided_view():
    """An NCHW array seen as CNHW (a transposed view) is read as it lies."""
    rng = np.random.default_rng(4)
    x_nchw = rng.standard_normal((3, 2, 9, 8))
    wt = rng.standard_normal((3, 2, 3, 3))
    gy = rng.standard_normal((3, 3, 9, 8))
    view = x_nchw.transpose(1, 0, 2, 3)
    _close(cpu_conv.shifted_forward(view, wt), ref_conv.forward(view, wt), np.float64)
    for got, want in zip(cpu_conv.shifted_backward(view, wt, gy), ref_conv.backward(view, wt, gy)):
        _close(got, want, np.float64)


@needs_blas
def test_only_the_gradients_asked_for_are_made():
    x, wt, gy = np.ones((2, 1, 3, 3)), np.ones((2, 2, 3, 3)), np.ones((2, 1, 3, 3))
    assert cpu_conv.shifted_backward(x, wt, gy, need_x=False)[0] is None
    assert cpu_conv.shifted_backward(x, wt, gy, need_w=False)[1] is None


@needs_blas
@pytest.mark.parametrize("c_in, c_out, k, shifted", [
    (16, 16, 3, True), (64, 64, 3, True), (128, 16, 3, True),  # RealNVP's hidden convs
    (2, 64, 3, False), (64, 2, 3, False), (256, 256, 3, False), (64, 64, 1, False),  # thin, wide, 1x1
])
def test_the_cpu_family_runs_the_shifted_gemms_only_where_they_measured_faster(c_in, c_out, k, shifted, monkeypatch):
    assert cpu_conv.shifted_pays(c_in, c_out, k) is shifted
    ran = []
    monkeypatch.setattr(cpu_conv, "shifted_forward", lambda x, w: ran.append("forward") or ref_conv.forward(x, w))
    monkeypatch.setattr(cpu_conv, "shifted_backward", lambda *a: ran.append("backward") or ref_conv.backward(*a))
    rng = np.random.default_rng(6)
    x, wt = rng.standard_normal((c_in, 1, 3, 3)), rng.standard_normal((c_out, c_in, k, k))
    gy = rng.standard_normal((c_out, 1, 3, 3))
    _close(cpu_conv.forward(x, wt), ref_conv.forward(x, wt), np.float64)
    for got, want in zip(cpu_conv.backward(x, wt, gy), ref_conv.backward(x, wt, gy)):
        _close(got, want, np.float64)
    assert ran == (["forward", "backward"] if shifted else [])


@needs_blas
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (True, False), (False, True), (True, True)])
def test_windowed_gemm_accumulates_into_a_window_of_c(dtype, trans_a, trans_b):
    rng = np.random.default_rng(5)
    m, n, k = 3, 4, 5
    big_a = rng.standard_normal((9, 11)).astype(dtype)  # windows start at (1, 2) of each buffer
    big_b = rng.standard_normal((8, 10)).astype(dtype)
    big_c = rng.standard_normal((6, 7)).astype(dtype)
    a_shape, b_shape = ((k, m) if trans_a else (m, k)), ((n, k) if trans_b else (k, n))
    a = big_a[1:1 + a_shape[0], 2:2 + a_shape[1]]
    b = big_b[1:1 + b_shape[0], 2:2 + b_shape[1]]
    want_c = big_c.copy()
    op_a, op_b = (a.T if trans_a else a), (b.T if trans_b else b)
    want_c[1:1 + m, 2:2 + n] = 0.5 * (op_a @ op_b) + 1.0 * big_c[1:1 + m, 2:2 + n]
    blas.gemm(m, n, k, big_a, 11, big_b, 10, big_c, 7, a_offset=13, b_offset=12, c_offset=9,
              trans_a=trans_a, trans_b=trans_b, alpha=0.5, beta=1.0)
    np.testing.assert_allclose(big_c, want_c, rtol=RTOL[dtype], atol=RTOL[dtype])


def test_without_numpys_blas_every_conv_runs_the_twin(monkeypatch):
    monkeypatch.setattr(blas, "AVAILABLE", False)
    assert not cpu_conv.shifted_pays(64, 64, 3)


def test_float16_runs_the_twin_blas_has_no_half_precision_gemm():
    assert not cpu_conv.shifted_pays(16, 16, 3, np.float16)
    rng = np.random.default_rng(9)
    x = rng.standard_normal((16, 1, 4, 4)).astype(np.float16)
    wt = (0.1 * rng.standard_normal((16, 16, 3, 3))).astype(np.float16)
    y = cpu_conv.forward(x, wt)
    assert y.dtype == np.float16
    np.testing.assert_array_equal(y, ref_conv.forward(x, wt))


@needs_blas
def test_windowed_gemm_refuses_a_window_outside_its_array_and_mixed_dtypes():
    a, b, c = np.ones((2, 3)), np.ones((3, 2)), np.ones((2, 2))
    with pytest.raises(ValueError, match="window of B"):
        blas.gemm(2, 2, 3, a, 3, b, 2, c, 2, b_offset=1)  # B's window runs one element past its end
    with pytest.raises(TypeError, match="dtype"):
        blas.gemm(2, 2, 3, a.astype(np.float32), 3, b, 2, c, 2)
    with pytest.raises(ValueError, match="window of A"):
        blas.gemm(2, 2, 3, np.ones((3, 2)).T, 3, b, 2, c, 2)  # not C-ordered


@needs_blas
@pytest.mark.parametrize("layout", ["NCHW", "CNHW"])
def test_conv2d_op_on_the_cpu_backend_runs_the_shifted_gemms_and_matches_the_numpy_backend(layout, monkeypatch):
    """The op end to end (bias, fused ReLU, both layouts) where the rule picks the shifted GEMMs: values and all
    three gradients equal the numpy backend's (the im2col twin) in float64."""
    import nflow
    import nflow.functional as F
    from nflow import Tensor
    calls = []
    forward = cpu_conv.shifted_forward
    monkeypatch.setattr(cpu_conv, "shifted_forward", lambda x, w: calls.append(1) or forward(x, w))
    rng = np.random.default_rng(8)
    c = cpu_conv.SHIFTED_MIN_CHANNELS  # C_in = C_out = 16: the smallest the rule sends to the shifted GEMMs
    x = rng.standard_normal((2, c, 5, 6) if layout == "NCHW" else (c, 2, 5, 6))
    wt, b = rng.standard_normal((c, c, 3, 3)) * 0.1, rng.standard_normal(c)
    gy = rng.standard_normal(x.shape)
    results = {}
    for backend in ("numpy", "numba"):
        with nflow.backend(backend):
            leaves = [Tensor(a.copy(), requires_grad=True) for a in (x, wt, b)]
            y = F.conv2d(*leaves, layout=layout, activation="relu")
            y.backward(gy)
            results[backend] = [y.data] + [t.grad for t in leaves]
    assert calls  # forward and dx of the numba run
    for got, want in zip(results["numba"], results["numpy"]):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
