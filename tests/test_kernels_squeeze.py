"""The squeeze kernel family: Numba and CUDA against the NumPy twin, the twin against the explicit index
formula, and the layer Squeeze.

Tolerances: none. The family only copies elements, each a single IEEE operation in the array's dtype, done
identically by the twin, the Numba loops and the CUDA threads; so every comparison between implementations is exact,
and so is the comparison with the independent reference (the index formula). Only the central-difference checks
(``nflow.gradcheck``, float64) have tolerances, gradcheck's own.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nflow
from kernel_helpers import assert_runs_with_jit_disabled, DTYPES, assert_same, draw_array
from nflow.flows import Squeeze
from nflow.flows.squeeze import squeeze, unsqueeze
from nflow.kernels import dispatch
from nflow.kernels.cpu import squeeze as cpu_squeeze
from nflow.kernels.reference import squeeze as ref_squeeze


EXAMPLES = 15  # per test; each example is microseconds once compiled, so the count is about coverage
seeds = st.integers(0, 2 ** 32 - 1)
BACKENDS = ["numpy", "numba"]  # the twins and the Numba kernels; the CUDA kernels are compared below (gpu)
even = st.integers(1, 3).map(lambda k: 2 * k)
squeeze_shapes = st.tuples(st.integers(1, 3), st.integers(2, 6), even, even)


def squeeze_by_index(x):
    """y[n, 4c + 2di + dj, i, j] = x[n, c, 2i + di, 2j + dj], element by element (RealNVP §3.6)."""
    n, c, h, w = x.shape
    y = np.empty((n, 4 * c, h // 2, w // 2), dtype=x.dtype)
    for b in range(n):
        for ch in range(c):
            for di in range(2):
                for dj in range(2):
                    for i in range(h // 2):
                        for j in range(w // 2):
                            y[b, 4 * ch + 2 * di + dj, i, j] = x[b, ch, 2 * i + di, 2 * j + dj]
    return y


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=EXAMPLES)
@given(shape=squeeze_shapes, seed=seeds)
def test_squeeze_kernel_matches_twin(dtype, shape, seed):
    rng = np.random.default_rng(seed)
    x = draw_array(rng, shape, dtype)
    n, c, h, w = shape
    y = draw_array(rng, (n, 4 * c, h // 2, w // 2), dtype)  # an independent array for the inverse
    assert_same(cpu_squeeze.forward(x), ref_squeeze.forward(x), dtype, "forward")
    assert_same(cpu_squeeze.inverse(y), ref_squeeze.inverse(y), dtype, "inverse")


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=EXAMPLES)
@given(shape=squeeze_shapes, seed=seeds)
def test_squeeze_twin_is_the_index_formula_and_inverts(dtype, shape, seed):
    rng = np.random.default_rng(seed)
    x = draw_array(rng, shape, dtype)
    n, c, h, w = shape
    y = ref_squeeze.forward(x)
    assert_same(y, squeeze_by_index(x), dtype, "forward against the index formula")
    # and the reshape/transpose formula of Glow's squeeze2d, as the layer wrote it before the kernels
    formula = x.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 1, 3, 5, 2, 4).reshape(n, 4 * c, h // 2, w // 2)
    assert_same(y, formula, dtype, "forward against reshape/transpose")
    for mod in (ref_squeeze, cpu_squeeze):
        assert_same(mod.inverse(mod.forward(x)), x, dtype, f"{mod.__name__}: inverse(forward(x))")
        assert_same(mod.forward(mod.inverse(y)), y, dtype, f"{mod.__name__}: forward(inverse(y))")


def test_squeeze_kernel_accepts_non_contiguous_input():
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 6)).transpose(0, 1, 3, 2)  # (2, 3, 6, 4), strided
    assert not x.flags.c_contiguous
    assert_same(cpu_squeeze.forward(x), squeeze_by_index(np.ascontiguousarray(x)), np.float64, "forward")


def test_squeeze_kernel_errors_name_the_kernel_and_the_shapes():
    with pytest.raises(ValueError, match=r"squeeze kernel: x must have even H and W, got shape \(1, 2, 3, 4\)"):
        cpu_squeeze.forward(np.zeros((1, 2, 3, 4)))
    with pytest.raises(ValueError, match=r"squeeze kernel: y must have a multiple of 4 channels, got shape "
                                         r"\(1, 6, 2, 2\)"):
        cpu_squeeze.inverse(np.zeros((1, 6, 2, 2)))
    with pytest.raises(ValueError, match=r"squeeze kernel: x must have shape \(N, C, H, W\), got shape \(2, 4\)"):
        cpu_squeeze.forward(np.zeros((2, 4)))
    with pytest.raises(TypeError, match="squeeze kernel: y must be float32 or float64, got int64"):
        cpu_squeeze.inverse(np.zeros((1, 4, 2, 2), np.int64))


def _tensor(rng, shape, requires_grad=True):
    return nflow.Tensor(rng.standard_normal(shape), requires_grad=requires_grad)


@pytest.mark.parametrize("backend", BACKENDS)
def test_squeeze_layer_gradients_and_round_trip(backend):
    rng = np.random.default_rng(5)
    layer = Squeeze()
    with nflow.backend(backend):
        x = _tensor(rng, (2, 3, 4, 2))
        assert nflow.gradcheck(lambda a: layer.forward(a)[0], [x])
        assert nflow.gradcheck(lambda a: layer.inverse(a)[0], [_tensor(rng, (2, 8, 1, 3))])
        y, logdet = layer.forward(x)
        np.testing.assert_array_equal(y.data, squeeze_by_index(x.data))
        np.testing.assert_array_equal(layer.inverse(y)[0].data, x.data)
        np.testing.assert_array_equal(logdet.data, np.zeros(2))


@pytest.mark.parametrize("backend", BACKENDS)
def test_node_gradients_against_central_differences(backend):
    rng = np.random.default_rng(2)
    with nflow.backend(backend):
        assert nflow.gradcheck(squeeze, [_tensor(rng, (2, 3, 4, 6))])
        assert nflow.gradcheck(unsqueeze, [_tensor(rng, (2, 8, 3, 2))])


def test_the_layer_runs_the_numba_kernels(monkeypatch):
    # on the numba backend the layer must go through the kernels (not a NumPy fallback): count the calls
    calls = []
    for name in ("forward", "inverse"):
        original = getattr(cpu_squeeze, name)
        monkeypatch.setattr(cpu_squeeze, name, lambda *a, n=name, f=original: calls.append(n) or f(*a))
    rng = np.random.default_rng(6)
    with nflow.backend("numba"):
        y, _ = Squeeze().forward(_tensor(rng, (1, 2, 2, 4)))
        y.backward(np.ones(y.shape))
    assert calls == ["forward", "inverse"]  # backward of squeeze is unsqueeze on the gradient


def test_dispatch_table_points_at_these_modules():
    assert dispatch.kernel_module("squeeze", "numba") is cpu_squeeze
    assert dispatch.kernel_module("squeeze", "numpy") is ref_squeeze
    assert dispatch.module_name("squeeze", "cupy") == "nflow.kernels.cuda.squeeze"


def test_layer_and_node_errors():
    with pytest.raises(ValueError, match=r"squeeze kernel: x must have even H and W, got shape \(2, 4, 3, 2\)"):
        squeeze(nflow.Tensor(np.zeros((2, 4, 3, 2))))
    with pytest.raises(ValueError, match=r"squeeze kernel: y must have a multiple of 4 channels, got shape "
                                         r"\(2, 6, 2, 2\)"):
        unsqueeze(nflow.Tensor(np.zeros((2, 6, 2, 2))))
    with nflow.backend("numba"):  # the layer's own messages come first, on every backend
        with pytest.raises(ValueError, match=r"Squeeze: spatial size must be even .* \(H=3, W=2\)"):
            Squeeze().forward(nflow.Tensor(np.zeros((2, 4, 3, 2))))
        with pytest.raises(ValueError, match=r"Squeeze.inverse: channels must be a multiple of 4"):
            Squeeze().inverse(nflow.Tensor(np.zeros((2, 6, 2, 2))))


def test_kernels_run_as_plain_python_with_jit_disabled():
    code = """
import numpy as np
from nflow.kernels.cpu import squeeze
from nflow.kernels.reference import squeeze as ref_squeeze
assert not hasattr(squeeze._squeeze, "py_func"), "the JIT is still on"
x = np.random.default_rng(0).standard_normal((2, 5, 2, 4))
np.testing.assert_array_equal(squeeze.forward(x), ref_squeeze.forward(x))
np.testing.assert_array_equal(squeeze.inverse(x[:, :4]), ref_squeeze.inverse(x[:, :4]))
print("ok")
"""
    assert_runs_with_jit_disabled(code)


@pytest.mark.gpu
def test_cuda_node_gradients_against_central_differences():
    rng = np.random.default_rng(9)
    with nflow.backend("cupy"):
        assert nflow.gradcheck(squeeze, [nflow.tensor(rng.standard_normal((2, 1, 4, 2)), requires_grad=True,
                                                      dtype=np.float64)])
        assert nflow.gradcheck(unsqueeze, [nflow.tensor(rng.standard_normal((2, 4, 1, 3)), requires_grad=True,
                                                        dtype=np.float64)])


# ---------------------------------------------------------------------------------------------- CUDA (GPU only)
GPU_SQUEEZE_SHAPES = [(3, 2, 4, 6), (1, 1, 2, 2), (64, 16, 28, 28)]


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_squeeze_matches_twin(dtype):
    import cupy as cp

    from nflow.kernels.cuda import squeeze as cuda_squeeze

    rng = np.random.default_rng(8)
    for n, c, h, w in GPU_SQUEEZE_SHAPES:
        x = cp.asarray(draw_array(rng, (n, c, h, w), dtype))
        y = cp.asarray(draw_array(rng, (n, 4 * c, h // 2, w // 2), dtype))
        assert_same(cp.asnumpy(cuda_squeeze.forward(x)), cp.asnumpy(ref_squeeze.forward(x)), dtype, "forward")
        assert_same(cp.asnumpy(cuda_squeeze.inverse(y)), cp.asnumpy(ref_squeeze.inverse(y)), dtype, "inverse")
        assert_same(cp.asnumpy(cuda_squeeze.inverse(cuda_squeeze.forward(x))), cp.asnumpy(x), dtype, "round trip")
    with pytest.raises(ValueError, match=r"squeeze kernel: x must have even H and W"):
        cuda_squeeze.forward(cp.zeros((1, 1, 3, 2), dtype))
