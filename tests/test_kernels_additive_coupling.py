"""NICE's additive coupling kernel family: Numba and CUDA against the NumPy twin, the twin against
split/add/concat, and the layer AdditiveCoupling against central differences.

Tolerances: none. The family only copies elements, adds one element to another or negates one, each a single IEEE
operation in the array's dtype, done identically by the twin, the Numba loops and the CUDA threads; so every
comparison between implementations is exact, and so is the comparison with the independent reference (split, add,
concatenate). Only the central-difference checks (``nflow.gradcheck``, float64) have tolerances, gradcheck's own.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nflow
from flow_helpers import perturb
from kernel_helpers import assert_runs_with_jit_disabled, DTYPES, assert_same, draw_array
from nflow.flows import MLP, AdditiveCoupling, GlowNet
from nflow.flows.additive_coupling import additive_coupling_forward, additive_coupling_inverse
from nflow.kernels import dispatch
from nflow.kernels.cpu import additive_coupling as cpu_additive
from nflow.kernels.reference import additive_coupling as ref_additive


EXAMPLES = 15  # per test; each example is microseconds once compiled, so the count is about coverage
seeds = st.integers(0, 2 ** 32 - 1)
BACKENDS = ["numpy", "numba"]  # the twins and the Numba kernels; the CUDA kernels are compared below (gpu)


@st.composite
def additive_cases(draw):
    """(shape of x, start, C_b): x is (N, C) or (N, C, H, W); [start, start + C_b) any non-empty channel block."""
    n, c = draw(st.integers(1, 3)), draw(st.integers(2, 6))
    trailing = draw(st.one_of(st.just(()), st.tuples(st.integers(1, 6), st.integers(1, 6))))
    width = draw(st.integers(1, c))
    start = draw(st.integers(0, c - width))
    return (n, c) + trailing, start, width


def split_add_concat(x, shift, start, sign):
    """The coupling's join as the layer used to do it: cut x in three along channels, add, concatenate."""
    stop = start + shift.shape[1]
    return np.concatenate([x[:, :start], x[:, start:stop] + sign * shift, x[:, stop:]], axis=1)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=EXAMPLES)
@given(case=additive_cases(), seed=seeds)
def test_additive_kernel_matches_twin(dtype, case, seed):
    shape, start, width = case
    rng = np.random.default_rng(seed)
    x, g = draw_array(rng, shape, dtype), draw_array(rng, shape, dtype)
    shift = draw_array(rng, (shape[0], width) + shape[2:], dtype)
    for name in ("forward", "inverse"):
        assert_same(getattr(cpu_additive, name)(x, shift, start), getattr(ref_additive, name)(x, shift, start),
                    dtype, name)
    for name in ("forward_backward", "inverse_backward"):
        got, want = getattr(cpu_additive, name)(g, start, width), getattr(ref_additive, name)(g, start, width)
        assert got[0] is g and want[0] is g, f"{name}: the full-size gradient is the incoming one, uncopied"
        assert_same(got[1], want[1], dtype, f"{name} shift gradient")
        assert got[1].flags.c_contiguous


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=EXAMPLES)
@given(case=additive_cases(), seed=seeds)
def test_additive_twin_is_split_add_concat(dtype, case, seed):
    shape, start, width = case
    rng = np.random.default_rng(seed)
    x = draw_array(rng, shape, dtype)
    shift = draw_array(rng, (shape[0], width) + shape[2:], dtype)
    x_before = x.copy()
    assert_same(ref_additive.forward(x, shift, start), split_add_concat(x, shift, start, 1), dtype, "forward")
    assert_same(ref_additive.inverse(x, shift, start), split_add_concat(x, shift, start, -1), dtype, "inverse")
    np.testing.assert_array_equal(x, x_before)  # the input is never written


@settings(max_examples=EXAMPLES)
@given(case=additive_cases(), seed=seeds)
def test_additive_backward_is_the_adjoint(case, seed):
    # y = x + E·shift is linear, so <y(x, shift), g> = <x, gx> + <shift, gshift> for the backward's (gx, gshift);
    # the inverse x = y - E·shift likewise. Independent of the twin; float64, where both sides round ~1e-16.
    shape, start, width = case
    rng = np.random.default_rng(seed)
    x, g = rng.standard_normal(shape), rng.standard_normal(shape)
    shift = rng.standard_normal((shape[0], width) + shape[2:])
    for mod in (cpu_additive, ref_additive):
        for apply, backward in ((mod.forward, mod.forward_backward), (mod.inverse, mod.inverse_backward)):
            gx, gshift = backward(g, start, width)
            np.testing.assert_allclose(np.vdot(apply(x, shift, start), g), np.vdot(x, gx) + np.vdot(shift, gshift),
                                       rtol=1e-12, atol=1e-12 * x.size)


def test_additive_kernel_accepts_non_contiguous_views():
    # the nets' outputs and channel slices arrive as strided views; the wrappers copy them to C order
    rng = np.random.default_rng(0)
    full = rng.standard_normal((2, 7, 3, 4))
    x, shift = full[:, 1:], full[:, :3].transpose(0, 1, 3, 2).copy().transpose(0, 1, 3, 2)
    assert not x.flags.c_contiguous and not shift.flags.c_contiguous
    for start in (0, 2, 3):
        assert_same(cpu_additive.forward(x, shift, start), ref_additive.forward(x, shift, start), np.float64, "forward")
        assert_same(cpu_additive.forward_backward(x, start, 3)[1], ref_additive.forward_backward(x, start, 3)[1],
                    np.float64, "forward_backward")


def test_additive_kernel_errors_name_the_kernel_and_the_shapes():
    x = np.zeros((2, 4, 3, 3), np.float32)
    shift = np.zeros((2, 2, 3, 3), np.float32)
    with pytest.raises(TypeError, match="additive coupling kernel: shift is float64 but x is float32"):
        cpu_additive.forward(x, shift.astype(np.float64), 2)
    with pytest.raises(TypeError, match="additive coupling kernel: x must be float32 or float64, got float16"):
        cpu_additive.forward(x.astype(np.float16), shift.astype(np.float16), 2)
    with pytest.raises(ValueError, match=r"shift must have shape \(2, 'C_b', 3, 3\) for x of shape \(2, 4, 3, 3\), "
                                         r"got \(2, 2, 3, 4\)"):
        cpu_additive.forward(x, np.zeros((2, 2, 3, 4), np.float32), 2)
    with pytest.raises(ValueError, match=r"shift must have shape .* got \(1, 2, 3, 3\)"):
        cpu_additive.inverse(x, np.zeros((1, 2, 3, 3), np.float32), 0)
    with pytest.raises(ValueError, match=r"channels \[3, 5\) must lie within the 4 channels of y"):
        cpu_additive.inverse(x, shift, 3)
    with pytest.raises(ValueError, match=r"channels \[-1, 1\) must lie within the 4 channels of gy"):
        cpu_additive.forward_backward(x, -1, 2)
    with pytest.raises(ValueError, match=r"gx must have shape \(N, C, \.\.\.\), got shape \(4,\)"):
        cpu_additive.inverse_backward(np.zeros(4), 0, 1)


def _tensor(rng, shape, requires_grad=True):
    return nflow.Tensor(rng.standard_normal(shape), requires_grad=requires_grad)


def _additive_layers(rng):
    """Both parities, on vectors (NICE: MLP) and images (Glow's additive step: GlowNet), parameters perturbed so
    the zero-initialised last layers do not make the couplings the identity."""
    for parity in (0, 1):
        for channels, shape, net in ((5, (2, 5), lambda a, b: MLP(a, b, 4, 1, dtype=np.float64)),
                                     (3, (2, 3, 2, 2), lambda a, b: GlowNet(a, b, 2, dtype=np.float64))):
            n_cond, n_trans = channels // 2, channels - channels // 2
            layer = AdditiveCoupling(channels, net(n_cond, n_trans), parity=parity)
            perturb(layer, rng)
            yield layer, shape


@pytest.mark.parametrize("backend", BACKENDS)
def test_additive_coupling_layer_gradients_against_central_differences(backend):
    # input and every network parameter, both directions: the fused join must route ∂L/∂y to x and to m(x_a)
    rng = np.random.default_rng(3)
    with nflow.backend(backend):
        for layer, shape in _additive_layers(rng):
            params = list(layer.parameters())
            x = _tensor(rng, shape)
            assert nflow.gradcheck(lambda a, *_: layer.forward(a)[0], [x] + params)
            assert nflow.gradcheck(lambda a, *_: layer.inverse(a)[0], [x] + params)


@pytest.mark.parametrize("backend", BACKENDS)
def test_additive_coupling_layer_is_the_nice_formula_and_inverts(backend):
    # y_a = x_a, y_b = x_b + m(x_a) (Dinh et al. 2014, eq. 5), with the block chosen by the parity; log-det 0
    rng = np.random.default_rng(4)
    with nflow.backend(backend):
        for layer, shape in _additive_layers(rng):
            x = _tensor(rng, shape, requires_grad=False)
            y, logdet = layer.forward(x)
            first = layer.n_cond if layer.parity == 0 else layer.n_trans
            a, b = x.data[:, :first], x.data[:, first:]
            xa, xb = (a, b) if layer.parity == 0 else (b, a)
            shift = layer.net(nflow.Tensor(np.ascontiguousarray(xa))).data
            parts = [xa, xb + shift] if layer.parity == 0 else [xb + shift, xa]
            np.testing.assert_array_equal(y.data, np.concatenate(parts, axis=1))
            np.testing.assert_array_equal(logdet.data, np.zeros(shape[0]))
            x_back, logdet_inverse = layer.inverse(y)
            np.testing.assert_allclose(x_back.data, x.data, rtol=0, atol=1e-12 * np.abs(x.data).max())
            np.testing.assert_array_equal(logdet_inverse.data, np.zeros(shape[0]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_node_gradients_against_central_differences(backend):
    rng = np.random.default_rng(2)
    with nflow.backend(backend):
        for shape, start in (((2, 5, 2, 3), 1), ((3, 6), 0), ((3, 6), 4)):
            x = _tensor(rng, shape)
            shift = _tensor(rng, (shape[0], 2) + shape[2:])
            assert nflow.gradcheck(lambda a, b, s=start: additive_coupling_forward(a, b, s), [x, shift])
            assert nflow.gradcheck(lambda a, b, s=start: additive_coupling_inverse(a, b, s), [x, shift])


def test_the_layer_runs_the_numba_kernels(monkeypatch):
    # on the numba backend the layer must go through the kernels (not a NumPy fallback): count the calls
    calls = []
    for name in ("forward", "inverse", "forward_backward", "inverse_backward"):
        original = getattr(cpu_additive, name)
        monkeypatch.setattr(cpu_additive, name, lambda *a, n=name, f=original: calls.append(n) or f(*a))
    rng = np.random.default_rng(6)
    with nflow.backend("numba"):
        layer, shape = next(_additive_layers(rng))
        for direction in (layer.forward, layer.inverse):
            y, _ = direction(_tensor(rng, shape))
            y.backward(np.ones(shape))
    assert calls == ["forward", "forward_backward", "inverse", "inverse_backward"]


def test_dispatch_table_points_at_these_modules():
    assert dispatch.kernel_module("additive_coupling", "numba") is cpu_additive
    assert dispatch.kernel_module("additive_coupling", "numpy") is ref_additive
    assert dispatch.module_name("additive_coupling", "cupy") == "nflow.kernels.cuda.additive_coupling"


def test_layer_and_node_errors():
    x = nflow.Tensor(np.zeros((2, 4, 2, 2)))
    wrong = AdditiveCoupling(4, GlowNet(2, 3, 2, dtype=np.float64))  # the net outputs 3 channels, not C_b = 2
    with pytest.raises(ValueError, match=r"AdditiveCoupling: the network's output has shape \(2, 3, 2, 2\), but "
                                         r"the transformed part has shape \(2, 2, 2, 2\)"):
        wrong.forward(x)
    with pytest.raises(ValueError, match=r"AdditiveCoupling: the network's output has shape \(2, 3, 2, 2\)"):
        wrong.inverse(x)
    with pytest.raises(ValueError, match=r"additive coupling kernel: channels \[3, 5\) must lie "
                                         r"within the 4 channels of x \(shape \(2, 4, 2, 2\)\)"):
        additive_coupling_forward(x, nflow.Tensor(np.zeros((2, 2, 2, 2))), 3)
    with pytest.raises(ValueError, match=r"additive coupling kernel: shift must have shape \(2, 'C_b', 2, 2\) for y "
                                         r"of shape \(2, 4, 2, 2\), got \(2, 2, 2\)"):
        additive_coupling_inverse(x, nflow.Tensor(np.zeros((2, 2, 2))), 0)
    with pytest.raises(TypeError, match="additive coupling kernel: shift is float32 but x is float64"):
        additive_coupling_forward(x, nflow.Tensor(np.zeros((2, 2, 2, 2), np.float32)), 0)


def test_kernels_run_as_plain_python_with_jit_disabled():
    code = """
import numpy as np
from nflow.kernels.cpu import additive_coupling
from nflow.kernels.reference import additive_coupling as ref_additive
assert not hasattr(additive_coupling._join, "py_func"), "the JIT is still on"
rng = np.random.default_rng(0)
x, shift = rng.standard_normal((2, 5, 2, 4)), rng.standard_normal((2, 2, 2, 4))
for start in (0, 3):
    for name in ("forward", "inverse"):
        np.testing.assert_array_equal(getattr(additive_coupling, name)(x, shift, start),
                                      getattr(ref_additive, name)(x, shift, start))
    for name in ("forward_backward", "inverse_backward"):
        np.testing.assert_array_equal(getattr(additive_coupling, name)(x, start, 2)[1],
                                      getattr(ref_additive, name)(x, start, 2)[1])
print("ok")
"""
    assert_runs_with_jit_disabled(code)


@pytest.mark.gpu
def test_cuda_node_gradients_against_central_differences():
    rng = np.random.default_rng(9)
    with nflow.backend("cupy"):
        x = nflow.tensor(rng.standard_normal((2, 5, 2, 2)), requires_grad=True, dtype=np.float64)
        shift = nflow.tensor(rng.standard_normal((2, 2, 2, 2)), requires_grad=True, dtype=np.float64)
        assert nflow.gradcheck(lambda a, b: additive_coupling_forward(a, b, 3), [x, shift])
        assert nflow.gradcheck(lambda a, b: additive_coupling_inverse(a, b, 0), [x, shift])


# ---------------------------------------------------------------------------------------------- CUDA (GPU only)
GPU_ADDITIVE_CASES = [((3, 5, 4, 6), 2, 3), ((2, 7), 0, 3), ((2, 7), 4, 3), ((64, 16, 14, 14), 8, 8)]


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_additive_coupling_matches_twin(dtype):
    import cupy as cp

    from nflow.kernels.cuda import additive_coupling as cuda_additive

    rng = np.random.default_rng(7)
    for shape, start, width in GPU_ADDITIVE_CASES:
        x, g = cp.asarray(draw_array(rng, shape, dtype)), cp.asarray(draw_array(rng, shape, dtype))
        shift = cp.asarray(draw_array(rng, (shape[0], width) + shape[2:], dtype))
        for name in ("forward", "inverse"):
            assert_same(cp.asnumpy(getattr(cuda_additive, name)(x, shift, start)),
                        cp.asnumpy(getattr(ref_additive, name)(x, shift, start)), dtype, name)
        for name in ("forward_backward", "inverse_backward"):
            got, want = getattr(cuda_additive, name)(g, start, width), getattr(ref_additive, name)(g, start, width)
            assert got[0] is g
            assert_same(cp.asnumpy(got[1]), cp.asnumpy(want[1]), dtype, f"{name} shift gradient")
        strided = x[:, ::-1]  # a non-contiguous view: the wrapper copies it to C order
        assert_same(cp.asnumpy(cuda_additive.forward(strided, shift, start)),
                    split_add_concat(cp.asnumpy(strided), cp.asnumpy(shift), start, 1), dtype, "strided forward")
    with pytest.raises(ValueError, match=r"additive coupling kernel: channels \[9, 17\) must lie within"):
        cuda_additive.forward(x, shift, 9)  # the last case: 16 channels, a block of 8
