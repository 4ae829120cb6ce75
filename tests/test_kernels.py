"""The hand-written kernels against their NumPy twins (kernels/reference), values and gradients.

Numba kernels (kernels/cpu) run here for hypothesis-drawn shapes (4-D: N 1-3, C 1-4, H, W 1-5; 2-D: N 1-3,
D 1-8) in both dtypes; the CUDA kernels (kernels/cuda) run the same comparisons on a GPU (``gpu`` marker,
skipped without one). A whole small Glow must give the same log_prob, gradients, encode/decode and samples on
the numpy and numba backends.

Tolerances, per dtype: kernels and twins compute the same formulas in the array's dtype but in a different
order, with different exp implementations (the kernels' ``vector_exp``, ≤ 2 ulp) and with the kernels' sums in
float64, so in float32 the two differ by a few float32 roundings of each intermediate: RTOL/ATOL below are
~100 float32 ulps (2⁻²³ ≈ 1.2e-7). In float64 both sides are near exact: 1e-12. Sums over M elements
(log-dets, per-channel gradients) carry M such roundings, so their absolute tolerance is scaled by M
(``scale=``).
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nflow
from nflow.backend import cupy_available
from nflow.kernels import dispatch
from nflow.kernels.cpu import actnorm as cpu_actnorm
from nflow.kernels.cpu import affine_coupling as cpu_affine
from nflow.kernels.cpu import gaussian as cpu_gaussian
from nflow.kernels.reference import actnorm as ref_actnorm
from nflow.kernels.reference import affine_coupling as ref_affine
from nflow.kernels.reference import conv as ref_conv
from nflow.kernels.reference import gaussian as ref_gaussian

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


# ---------------------------------------------------------------------------------------------- exp
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


# ---------------------------------------------------------------------------------------------- affine coupling
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("form", ["sigmoid", "exp"])
@settings(max_examples=EXAMPLES)
@given(shape=shapes, seed=seeds)
def test_affine_coupling_matches_twin(dtype, form, shape, seed):
    rng = np.random.default_rng(seed)
    # h spread 3: h + 2 takes both signs, so both branches of the stable sigmoid run
    x, h, t, g = draw(rng, shape, dtype), draw(rng, shape, dtype, 3.0), draw(rng, shape, dtype), draw(rng, shape, dtype)
    glogdet = draw(rng, shape[:1], dtype)
    m = elements_per_sample(shape)
    for name in ("forward", "inverse"):
        (out, logdet), (ref_out, ref_logdet) = (getattr(mod, name)(x, h, t, form) for mod in (cpu_affine, ref_affine))
        assert_close(out, ref_out, dtype, what=f"{name} output")
        assert_close(logdet, ref_logdet, dtype, scale=m, what=f"{name} log-det")
    got = cpu_affine.forward_backward(x, h, g, glogdet, form)
    want = ref_affine.forward_backward(x, h, g, glogdet, form)
    for a, b, what in zip(got, want, ("dx", "dh", "dt")):
        assert_close(a, b, dtype, what=f"forward_backward {what}")
    got = cpu_affine.inverse_backward(x, h, t, g, glogdet, form)
    want = ref_affine.inverse_backward(x, h, t, g, glogdet, form)
    for a, b, what in zip(got, want, ("dy", "dh", "dt")):
        assert_close(a, b, dtype, what=f"inverse_backward {what}")


def test_affine_coupling_extreme_log_scales_agree():
    # u = h + 2 far out on both sides: s underflows towards 0 or saturates at 1; log-det stays finite
    h = np.array([[-800.0, -40.0, -2.0, 0.0, 40.0, 800.0]])
    x = np.ones_like(h)
    y, logdet = cpu_affine.forward(x, h, np.zeros_like(h), "sigmoid")
    ref_y, ref_logdet = ref_affine.forward(x, h, np.zeros_like(h), "sigmoid")
    np.testing.assert_allclose(y, ref_y, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(logdet, ref_logdet, rtol=1e-12)


def test_affine_coupling_accepts_channel_slices_and_checks_dtypes():
    rng = np.random.default_rng(0)
    full = rng.standard_normal((2, 6, 3, 3))
    xb, h, t = full[:, 3:], full[:, :3] * 0.5, full[:, 1:4]  # non-contiguous views, as the coupling hands in
    assert not xb.flags.c_contiguous
    for a, b in zip(cpu_affine.forward(xb, h, t, "sigmoid"), ref_affine.forward(xb, h, t, "sigmoid")):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    with pytest.raises(TypeError, match="float32 but x is float64"):
        cpu_affine.forward(xb, h.astype(np.float32), t, "sigmoid")
    with pytest.raises(ValueError, match="form must be one of"):
        cpu_affine.forward(xb, h, t, "tanh")


def test_affine_coupling_gradients_against_central_differences():
    # an independent check of the Numba backward: the graph node, float64 finite differences
    from nflow.flows.affine_coupling import affine_coupling_forward, affine_coupling_inverse

    rng = np.random.default_rng(1)
    x, h, t = (nflow.Tensor(rng.standard_normal((2, 3, 2, 2)), requires_grad=True) for _ in range(3))
    with nflow.backend("numba"):
        for form in ("sigmoid", "exp"):
            for fn in (affine_coupling_forward, affine_coupling_inverse):
                assert nflow.gradcheck(lambda a, b, c: _mix(fn(a, b, c, form)), [x, h, t])


def _mix(outputs):
    y, logdet = outputs
    # one scalar-friendly tensor that depends on both outputs, so both gradients are checked
    return nflow.functional.sum(y, axis=(1, 2, 3)) * 0.5 + logdet


# ---------------------------------------------------------------------------------------------- actnorm
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=EXAMPLES)
@given(shape=shapes, seed=seeds)
def test_actnorm_matches_twin(dtype, shape, seed):
    rng = np.random.default_rng(seed)
    x, g = draw(rng, shape, dtype), draw(rng, shape, dtype)
    bias, log_s = draw(rng, shape[1:2], dtype), draw(rng, shape[1:2], dtype)
    glogdet = draw(rng, shape[:1], dtype)
    per_channel = shape[0] * math.prod(shape[2:])
    for name in ("forward", "inverse"):
        (out, logdet), (ref_out, ref_logdet) = (getattr(mod, name)(x, bias, log_s) for mod in (cpu_actnorm, ref_actnorm))
        assert_close(out, ref_out, dtype, what=f"{name} output")
        assert_close(logdet, ref_logdet, dtype, scale=elements_per_sample(shape), what=f"{name} log-det")
    for name in ("forward_backward", "inverse_backward"):
        got = getattr(cpu_actnorm, name)(x, bias, log_s, g, glogdet)
        want = getattr(ref_actnorm, name)(x, bias, log_s, g, glogdet)
        assert_close(got[0], want[0], dtype, what=f"{name} input gradient")
        # per-channel sums of N·P terms of size up to ~e^|log_s|·|g|·|x + b|
        scale = per_channel * float(np.exp(np.abs(log_s.astype(np.float64))).max()) * 10
        assert_close(got[1], want[1], dtype, scale=scale, what=f"{name} bias gradient")
        assert_close(got[2], want[2], dtype, scale=scale, what=f"{name} log-scale gradient")


def test_actnorm_checks_shapes_and_dtypes():
    x = np.zeros((2, 3, 4, 4), np.float32)
    with pytest.raises(ValueError, match=r"bias must have shape \(3,\)"):
        cpu_actnorm.forward(x, np.zeros(4, np.float32), np.zeros(3, np.float32))
    with pytest.raises(TypeError, match="log_s is float64 but x is float32"):
        cpu_actnorm.forward(x, np.zeros(3, np.float32), np.zeros(3, np.float64))


# ---------------------------------------------------------------------------------------------- gaussian
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=EXAMPLES)
@given(shape=shapes, seed=seeds)
def test_gaussian_log_prob_matches_twin(dtype, shape, seed):
    rng = np.random.default_rng(seed)
    z = draw(rng, shape, dtype)
    glogp = draw(rng, shape[:1], dtype)
    m = elements_per_sample(shape)
    assert_close(cpu_gaussian.standard_log_prob(z), ref_gaussian.standard_log_prob(z), dtype, scale=m,
                 what="standard log_prob")
    assert_close(cpu_gaussian.standard_log_prob_backward(z, glogp),
                 ref_gaussian.standard_log_prob_backward(z, glogp), dtype, what="standard dz")


def test_gaussian_log_prob_is_the_normal_density():
    # an independent value: the density of N(0, 1) at z, from its closed form, in float64
    z = np.array([[0.3, -1.2], [2.5, 0.0]])
    expected = np.sum(np.log(np.exp(-0.5 * z ** 2) / np.sqrt(2 * np.pi)), axis=1)
    for module in (cpu_gaussian, ref_gaussian):
        np.testing.assert_allclose(module.standard_log_prob(z), expected, rtol=1e-14)


def test_gaussian_graph_node_has_correct_gradients():
    from nflow.flows.priors import standard_gaussian_log_prob

    rng = np.random.default_rng(2)
    z = nflow.Tensor(rng.standard_normal((2, 3, 2)), requires_grad=True)
    for backend in ("numpy", "numba"):
        with nflow.backend(backend):
            assert nflow.gradcheck(standard_gaussian_log_prob, [z])


# ---------------------------------------------------------------------------------------------- im2col / col2im
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


def test_conv_runs_the_measured_faster_im2col():
    # nflow/ops/conv.py unfolds with the dispatched module: the NumPy twin on numba too (it measured faster)
    assert dispatch.kernel_module("conv", "numba") is ref_conv
    assert dispatch.kernel_module("conv", "numpy") is ref_conv


# ---------------------------------------------------------------------------------------------- dispatch
def test_numba_backend_dispatches_to_the_numba_kernels():
    assert dispatch.kernel_module("affine_coupling", "numba") is cpu_affine
    assert dispatch.kernel_module("actnorm", "numba") is cpu_actnorm
    assert dispatch.kernel_module("gaussian", "numba") is cpu_gaussian
    assert dispatch.kernel_module("affine_coupling", "numpy") is ref_affine
    assert dispatch.module_name("actnorm", "cupy") == "nflow.kernels.cuda.actnorm"
    with nflow.backend("numba"):
        assert dispatch.kernel_module("actnorm") is cpu_actnorm
    with pytest.raises(KeyError, match="unknown kernel family"):
        dispatch.kernel_module("nope")


# ---------------------------------------------------------------------------------------------- whole Glow
def _glow():
    from nflow.models import Glow
    return Glow((1, 8, 8), levels=2, steps=2, hidden=8, dtype=np.float64)


@pytest.fixture(scope="module")
def glow_pair():
    """The same Glow twice: built and initialised (ActNorm's data-dependent start) on numpy, its weights
    perturbed so no layer is at its identity start, then copied into a second model used on numba."""
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 1, (3, 1, 8, 8))
    with nflow.backend("numpy"):
        nflow.seed(5)
        reference = _glow()
        reference.log_prob(x)  # ActNorm initialises from this batch
        for p in reference.parameters():
            p.data += 0.05 * rng.standard_normal(p.shape)
    with nflow.backend("numba"):
        nflow.seed(6)  # a different seed: everything it draws must be overwritten by the state dict
        twin = _glow()
        twin.load_state_dict(reference.state_dict())
    return reference, twin, x


def _log_prob_and_grads(model, x, backend):
    with nflow.backend(backend):
        model.zero_grad()
        log_prob = model.log_prob(x)
        (-log_prob.sum() * (1.0 / len(x))).backward()
        return log_prob.data, {name: p.grad for name, p in model.named_parameters()}


def test_glow_log_prob_and_gradients_agree_across_backends(glow_pair):
    reference, twin, x = glow_pair
    lp_ref, grads_ref = _log_prob_and_grads(reference, x, "numpy")
    lp, grads = _log_prob_and_grads(twin, x, "numba")
    np.testing.assert_allclose(lp, lp_ref, rtol=1e-11)
    assert grads.keys() == grads_ref.keys()
    for name in grads_ref:
        scale = np.abs(grads_ref[name]).max()
        np.testing.assert_allclose(grads[name], grads_ref[name], rtol=1e-9, atol=1e-11 * max(scale, 1.0),
                                   err_msg=name)


def test_glow_encode_decode_and_samples_agree_across_backends(glow_pair):
    reference, twin, x = glow_pair
    with nflow.backend("numpy"):
        z_ref = reference.encode(x)
        x_ref = reference.decode(z_ref)
        samples_ref = reference.sample(4, temperature=0.7, seed=11)
    with nflow.backend("numba"):
        z = twin.encode(x)
        x_back = twin.decode(z)
        samples = twin.sample(4, temperature=0.7, seed=11)
    for a, b in zip(z, z_ref):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(x_back, x, atol=1e-10)  # decode inverts encode
    np.testing.assert_allclose(x_back, x_ref, atol=1e-12)
    np.testing.assert_allclose(samples, samples_ref, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------------------- CUDA (GPU only)
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("form", ["sigmoid", "exp"])
def test_cuda_affine_coupling_matches_twin(dtype, form):
    import cupy as cp

    from nflow.kernels.cuda import affine_coupling as cuda_affine

    rng = np.random.default_rng(7)
    for shape in [(3, 4, 5, 5), (2, 7), (64, 16, 14, 14)]:
        x, h, t, g = (cp.asarray(draw(rng, shape, dtype, s)) for s in (1.0, 3.0, 1.0, 1.0))
        glogdet = cp.asarray(draw(rng, shape[:1], dtype))
        m = elements_per_sample(shape)
        for name in ("forward", "inverse"):
            (out, logdet), (ref_out, ref_logdet) = (getattr(mod, name)(x, h, t, form) for mod in (cuda_affine, ref_affine))
            assert_close(cp.asnumpy(out), cp.asnumpy(ref_out), dtype, what=name)
            assert_close(cp.asnumpy(logdet), cp.asnumpy(ref_logdet), dtype, scale=m, what=f"{name} log-det")
        for got, want in ((cuda_affine.forward_backward(x, h, g, glogdet, form),
                           ref_affine.forward_backward(x, h, g, glogdet, form)),
                          (cuda_affine.inverse_backward(x, h, t, g, glogdet, form),
                           ref_affine.inverse_backward(x, h, t, g, glogdet, form))):
            for a, b in zip(got, want):
                assert_close(cp.asnumpy(a), cp.asnumpy(b), dtype)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_actnorm_matches_twin(dtype):
    import cupy as cp

    from nflow.kernels.cuda import actnorm as cuda_actnorm

    rng = np.random.default_rng(8)
    for shape in [(3, 4, 5, 5), (2, 7), (64, 16, 14, 14)]:
        x, g = cp.asarray(draw(rng, shape, dtype)), cp.asarray(draw(rng, shape, dtype))
        bias, log_s = cp.asarray(draw(rng, shape[1:2], dtype)), cp.asarray(draw(rng, shape[1:2], dtype, 0.5))
        glogdet = cp.asarray(draw(rng, shape[:1], dtype))
        per_channel = shape[0] * math.prod(shape[2:])
        for name in ("forward", "inverse"):
            for a, b in zip(getattr(cuda_actnorm, name)(x, bias, log_s), getattr(ref_actnorm, name)(x, bias, log_s)):
                assert_close(cp.asnumpy(a), cp.asnumpy(b), dtype, scale=elements_per_sample(shape), what=name)
        for name in ("forward_backward", "inverse_backward"):
            got = getattr(cuda_actnorm, name)(x, bias, log_s, g, glogdet)
            want = getattr(ref_actnorm, name)(x, bias, log_s, g, glogdet)
            assert_close(cp.asnumpy(got[0]), cp.asnumpy(want[0]), dtype, what=name)
            for a, b in zip(got[1:], want[1:]):
                assert_close(cp.asnumpy(a), cp.asnumpy(b), dtype, scale=10 * per_channel, what=name)


@pytest.mark.gpu
def test_glow_on_cupy_agrees_with_numpy(glow_pair):
    reference, _, x = glow_pair
    lp_ref, grads_ref = _log_prob_and_grads(reference, x, "numpy")
    with nflow.backend("cupy"):
        gpu = _glow()
        gpu.load_state_dict(reference.state_dict())
    lp, grads = _log_prob_and_grads(gpu, x, "cupy")
    from nflow.backend import to_numpy
    np.testing.assert_allclose(to_numpy(lp), lp_ref, rtol=1e-10)
    for name in grads_ref:
        np.testing.assert_allclose(to_numpy(grads[name]), grads_ref[name], rtol=1e-8,
                                   atol=1e-10 * max(np.abs(grads_ref[name]).max(), 1.0), err_msg=name)


def test_cupy_backend_without_a_gpu_says_why():
    if cupy_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="backend 'cupy' is unavailable"):
        nflow.set_backend("cupy")


def test_kernels_run_as_plain_python_with_jit_disabled():
    # NUMBA_DISABLE_JIT=1 lets a reader step through the loops; they must still compute the twin's values
    import subprocess
    import sys

    code = """
import numpy as np
from nflow.kernels.cpu import actnorm, affine_coupling, gaussian, vector_exp
from nflow.kernels.reference import actnorm as ref_actnorm, affine_coupling as ref_affine, gaussian as ref_gaussian
assert not hasattr(affine_coupling._forward, "py_func"), "the JIT is still on"
rng = np.random.default_rng(0)
x, h, t, g = (rng.standard_normal((2, 3, 2, 2)) for _ in range(4))
gl = rng.standard_normal(2)
for form in ("sigmoid", "exp"):
    for a, b in zip(affine_coupling.forward(x, 3 * h, t, form), ref_affine.forward(x, 3 * h, t, form)):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    for a, b in zip(affine_coupling.inverse_backward(x, h, t, g, gl, form),
                    ref_affine.inverse_backward(x, h, t, g, gl, form)):
        np.testing.assert_allclose(a, b, rtol=1e-12)
for a, b in zip(actnorm.forward_backward(x, h[0, :, 0, 0], t[0, :, 0, 0], g, gl),
                ref_actnorm.forward_backward(x, h[0, :, 0, 0], t[0, :, 0, 0], g, gl)):
    np.testing.assert_allclose(a, b, rtol=1e-12)
np.testing.assert_allclose(gaussian.standard_log_prob(x), ref_gaussian.standard_log_prob(x), rtol=1e-12)
assert vector_exp.float64_from_bits(0x3FF0000000000000) == 1.0 and vector_exp.float32_from_bits(0x40000000) == 2.0
print("ok")
"""
    env = dict(__import__("os").environ, NUMBA_DISABLE_JIT="1")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
