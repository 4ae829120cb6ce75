"""The bias + ReLU epilogue of the hidden convolutions (kernel family ``bias_relu``): the Numba kernel against
its NumPy twin, the twin against the plain definition, and the fused conv2d(activation="relu") against conv2d
followed by a separate ReLU, values and float64 gradients.

Tolerances: values are exact (one add and one max per element, the same operations in the same order); the
per-channel bias gradient sums M elements, in float64 in the kernel and pairwise in the array's dtype in the
twin, so its absolute tolerance is M float32 (or float64) roundings of the largest term.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nflow
import nflow.functional as F
from nflow import Tensor
from nflow.kernels import dispatch
from nflow.kernels.cpu import bias_relu as cpu_bias_relu
from nflow.kernels.reference import bias_relu as ref_bias_relu
from flow_helpers import gradcheck  # nflow.gradcheck, drawing another point where one sits on a kink

DTYPES = [np.float32, np.float64]
EPS = {np.float32: np.finfo(np.float32).eps, np.float64: np.finfo(np.float64).eps}


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=20)
@given(c=st.integers(1, 5), m=st.integers(0, 40), seed=st.integers(0, 2 ** 32 - 1))
def test_kernel_matches_twin(dtype, c, m, seed):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((c, m)).astype(dtype)
    b = rng.standard_normal(c).astype(dtype)
    gy = rng.standard_normal((c, m)).astype(dtype)
    y = cpu_bias_relu.forward(z.copy(), b)
    y_ref = ref_bias_relu.forward(z.copy(), b)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, y_ref)
    g, gb = cpu_bias_relu.backward(y, gy)
    g_ref, gb_ref = ref_bias_relu.backward(y_ref, gy)
    assert g.dtype == gb.dtype == dtype
    np.testing.assert_array_equal(g, g_ref)
    np.testing.assert_allclose(gb, gb_ref, rtol=0, atol=max(m, 1) * 4 * EPS[dtype] * max(np.abs(g).max(initial=0), 1))


@pytest.mark.parametrize("module", [cpu_bias_relu, ref_bias_relu], ids=["numba", "numpy"])
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=15)
@given(c=st.integers(1, 5), m=st.integers(0, 70), seed=st.integers(0, 2 ** 32 - 1))
def test_backward_into_gy_itself_or_a_given_array_equals_a_fresh_one(module, dtype, c, m, seed):
    """out=gy (the op's in-place path, a separate loop in the Numba kernel) and out=another array give exactly
    what the fresh-array call gives, and write where they were told to."""
    rng = np.random.default_rng(seed)
    y = np.maximum(rng.standard_normal((c, m)), 0).astype(dtype)
    gy = rng.standard_normal((c, m)).astype(dtype)
    want_g, want_gb = module.backward(y, gy.copy())
    gy_inplace = gy.copy()
    g, gb = module.backward(y, gy_inplace, out=gy_inplace)
    assert g is gy_inplace
    np.testing.assert_array_equal(g, want_g)
    np.testing.assert_array_equal(gb, want_gb)
    given = np.full_like(gy, np.nan)
    g, gb = module.backward(y, gy, out=given)
    assert g is given
    np.testing.assert_array_equal(g, want_g)
    np.testing.assert_array_equal(gb, want_gb)


@pytest.mark.parametrize("module", [cpu_bias_relu, ref_bias_relu], ids=["numba", "numpy"])
def test_backward_refuses_an_out_that_overlaps_gy_or_does_not_fit(module):
    buffer = np.zeros(17)
    gy, shifted = buffer[:16].reshape(2, 8), buffer[1:].reshape(2, 8)  # one element apart in the same memory
    with pytest.raises(ValueError, match="gy itself or memory apart"):
        module.backward(np.zeros((2, 8)), gy, out=shifted)
    with pytest.raises(ValueError, match="out must be C-ordered|must be C-ordered"):
        module.backward(np.zeros((2, 8)), np.zeros((2, 8)), out=np.zeros((8, 2)).T)
    with pytest.raises(TypeError, match="out is float32"):
        module.backward(np.zeros((2, 8)), np.zeros((2, 8)), out=np.zeros((2, 8), dtype=np.float32))


def test_twin_is_the_definition():
    rng = np.random.default_rng(1)
    z, b, gy = rng.standard_normal((3, 7)), rng.standard_normal(3), rng.standard_normal((3, 7))
    want_y = np.array([[max(z[c, j] + b[c], 0.0) for j in range(7)] for c in range(3)])
    want_g = np.array([[gy[c, j] if z[c, j] + b[c] > 0 else 0.0 for j in range(7)] for c in range(3)])
    y = ref_bias_relu.forward(z.copy(), b)
    np.testing.assert_array_equal(y, want_y)
    g, gb = ref_bias_relu.backward(y, gy)
    np.testing.assert_array_equal(g, want_g)
    np.testing.assert_allclose(gb, want_g.sum(axis=1), rtol=1e-15)


@pytest.mark.parametrize("module", [cpu_bias_relu, ref_bias_relu], ids=["numba", "numpy"])
def test_nan_propagates_instead_of_being_clipped(module):
    z = np.array([[np.nan, -1.0, 2.0]])
    y = module.forward(z, np.zeros(1))
    assert np.isnan(y[0, 0]) and y[0, 1] == 0 and y[0, 2] == 2
    g, gb = module.backward(np.array([[0.0, 1.0, 0.0]]), np.array([[np.nan, 3.0, 1.0]]))
    assert np.isnan(g[0, 0]) and np.isnan(gb[0])  # NaN · 0 is NaN, as in the unfused gy · [y > 0]


def test_kernel_refuses_bad_input():
    for module in (ref_bias_relu, cpu_bias_relu):  # one contract (kernels/reference/bias_relu.py), same sentences
        with pytest.raises(ValueError, match=r"z must be \(C, M\) with C = 2"):
            module.forward(np.zeros((3, 4)), np.zeros(2))
        with pytest.raises(TypeError, match="float32 or float64"):
            module.forward(np.zeros((2, 4), dtype=np.int64), np.zeros(2, dtype=np.int64))
        with pytest.raises(TypeError, match="z is float32 but the bias is float64"):
            module.forward(np.zeros((2, 4), dtype=np.float32), np.zeros(2))
        with pytest.raises(ValueError, match="must be C-ordered"):
            module.forward(np.zeros((4, 2)).T, np.zeros(2))
        with pytest.raises(ValueError, match="must match"):
            module.backward(np.zeros((2, 4)), np.zeros((2, 5)))


def test_dispatch():
    assert dispatch.kernel_module("bias_relu", "numba") is cpu_bias_relu
    assert dispatch.kernel_module("bias_relu", "numpy") is ref_bias_relu


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("layout", ["NCHW", "CNHW"])
@pytest.mark.parametrize("c_in, c_out, k", [(2, 3, 3), (3, 3, 1), (4, 2, 3)])
def test_fused_conv_relu_equals_conv_then_relu(c_in, c_out, k, layout, backend):
    rng = np.random.default_rng(c_in * 10 + c_out + k)
    shape = (2, c_in, 4, 5) if layout == "NCHW" else (c_in, 2, 4, 5)
    x = rng.standard_normal(shape)
    w, b = rng.standard_normal((c_out, c_in, k, k)), rng.standard_normal(c_out)
    out_shape = (2, c_out, 4, 5) if layout == "NCHW" else (c_out, 2, 4, 5)
    gy = rng.standard_normal(out_shape)
    results = []
    with nflow.backend(backend):
        for fused in (True, False):
            tx, tw, tb = (Tensor(a.copy(), requires_grad=True) for a in (x, w, b))
            y = (F.conv2d(tx, tw, tb, layout=layout, activation="relu") if fused
                 else F.relu(F.conv2d(tx, tw, tb, layout=layout)))
            y.backward(gy)
            results.append((y.data, tx.grad, tw.grad, tb.grad))
    assert (results[0][0] == 0).any() and (results[0][0] > 0).any()  # the ReLU is active on both sides
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_fused_conv_relu_gradients_against_central_differences(backend):
    rng = np.random.default_rng(5)
    x = Tensor(rng.standard_normal((3, 2, 4, 4)), requires_grad=True)  # CNHW
    w = Tensor(rng.standard_normal((4, 3, 3, 3)) * 0.5, requires_grad=True)
    b = Tensor(rng.standard_normal(4) * 0.1, requires_grad=True)
    with nflow.backend(backend):
        assert gradcheck(lambda s, t, u: F.conv2d(s, t, u, layout="CNHW", activation="relu"), [x, w, b], seed=3)


def test_conv_refuses_unknown_activation():
    with pytest.raises(ValueError, match="activation must be one of"):
        F.conv2d(Tensor(np.zeros((1, 2, 3, 3))), Tensor(np.zeros((2, 2, 1, 1))), activation="gelu")
    with pytest.raises(ValueError, match="activation must be one of"):
        nflow.nn.Conv2d(2, 2, activation="tanh")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_kernel_matches_twin(dtype):
    import cupy as cp

    from nflow.kernels.cuda import bias_relu as cuda_bias_relu

    rng = np.random.default_rng(8)
    for c, m in [(3, 17), (256, 12544)]:
        z = rng.standard_normal((c, m)).astype(dtype)
        b, gy = rng.standard_normal(c).astype(dtype), rng.standard_normal((c, m)).astype(dtype)
        y_ref = ref_bias_relu.forward(z.copy(), b)
        g_ref, gb_ref = ref_bias_relu.backward(y_ref, gy)
        y = cuda_bias_relu.forward(cp.asarray(z), cp.asarray(b))
        np.testing.assert_array_equal(cp.asnumpy(y), y_ref)
        g, gb = cuda_bias_relu.backward(y, cp.asarray(gy))
        np.testing.assert_array_equal(cp.asnumpy(g), g_ref)
        np.testing.assert_allclose(cp.asnumpy(gb), gb_ref, rtol=0, atol=m * 4 * EPS[dtype] * np.abs(g_ref).max())
