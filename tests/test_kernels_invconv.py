"""Glow's 1x1 convolution kernels (families ``invconv`` and ``lu``): Numba and CUDA against the NumPy twins,
the twins against independent references, and the layer InvConv1x1 built on them.

- Numba vs twin: hypothesis-drawn shapes (N 1-3, C 1-6, H, W 1-5), both dtypes, values and gradients. The
  Numba wrappers pick loops or ``np.matmul`` by channel count (kernels/cpu/invconv.py); both paths are run
  here for every drawn shape by moving the thresholds.
- Twins vs references: the map against nflow's ``conv2d`` with W as a (C, C, 1, 1) kernel and an explicit
  ``einsum``; the LU weight against P @ L @ Ũ assembled entry by entry; gradients of both graph nodes in
  float64 against central differences (``nflow.gradcheck``), on the numpy and numba backends.
- The layer: gradients through InvConv1x1 (both forms) against central differences, and its output and
  gradients equal to the composition of generic ops it replaced. inverse∘forward and log-det against a full
  Jacobian (det < 0 included) are the kit's properties in tests/test_builtin_layers_through_kit.py, which check
  InvConv1x1 in both forms and compare the backends; not repeated here.

Tolerances, per dtype (as in tests/kernel_helpers.py): RTOL/ATOL ~100 float32 ulps, 1e-12 in float64; a value
that is a sum of K products carries K roundings, so its absolute tolerance is scaled by K.
"""
import contextlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nflow
import nflow.functional as F
from nflow.backend import to_numpy
from nflow.flows import InvConv1x1
from nflow.flows.invconv import invconv, lu_weight
from nflow.kernels.cpu import invconv as cpu_invconv
from nflow.kernels.cpu import lu as cpu_lu
from nflow.kernels.cpu.invconv import MAP_LOOP_MAX_CHANNELS, WEIGHT_LOOP_MAX_CHANNELS
from nflow.kernels.reference import invconv as ref_invconv
from nflow.kernels.reference import lu as ref_lu
from nflow.tensor import Tensor


RTOL = {np.float32: 1e-5, np.float64: 1e-12}
ATOL = {np.float32: 1e-5, np.float64: 1e-12}
DTYPES = [np.float32, np.float64]
EXAMPLES = 15  # per test; microseconds each once compiled
CPU_BACKENDS = ["numpy", "numba"]

shapes = st.tuples(st.integers(1, 3), st.integers(1, 6), st.integers(1, 5), st.integers(1, 5))
channels = st.integers(1, 6)
seeds = st.integers(0, 2 ** 32 - 1)


def assert_close(actual, expected, dtype, scale=1.0, what=""):
    assert actual.dtype == expected.dtype == dtype, f"{what}: dtypes {actual.dtype} vs {expected.dtype}"
    assert actual.shape == expected.shape, f"{what}: shapes {actual.shape} vs {expected.shape}"
    np.testing.assert_allclose(actual, expected, rtol=RTOL[dtype], atol=ATOL[dtype] * scale, err_msg=what)


def draw(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def lu_inputs(rng, c, dtype):
    """(P, lower, upper, sign(s), log|s|) with full random lower/upper: the masked entries must not matter."""
    perm = np.eye(c)[rng.permutation(c)].astype(dtype)
    lower, upper = draw(rng, (c, c), dtype), draw(rng, (c, c), dtype)
    sign_s = rng.choice([-1.0, 1.0], c).astype(dtype)
    log_s = (0.5 * rng.standard_normal(c)).astype(dtype)
    return perm, lower, upper, sign_s, log_s


@contextlib.contextmanager
def invconv_path(path):
    """Force the Numba wrappers onto their loops (``"loops"``) or onto np.matmul (``"matmul"``) for any C."""
    saved = cpu_invconv.MAP_LOOP_MAX_CHANNELS, cpu_invconv.WEIGHT_LOOP_MAX_CHANNELS
    limit = 10 ** 9 if path == "loops" else 0
    cpu_invconv.MAP_LOOP_MAX_CHANNELS = cpu_invconv.WEIGHT_LOOP_MAX_CHANNELS = limit
    try:
        yield
    finally:
        cpu_invconv.MAP_LOOP_MAX_CHANNELS, cpu_invconv.WEIGHT_LOOP_MAX_CHANNELS = saved


# ---------------------------------------------------------------------------------------------- Numba vs twin
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("path", ["loops", "matmul"])
@settings(max_examples=EXAMPLES)
@given(shape=shapes, seed=seeds)
def test_invconv_numba_matches_twin(dtype, path, shape, seed):
    rng = np.random.default_rng(seed)
    n, c, h, w = shape
    x, gy, weight = draw(rng, shape, dtype), draw(rng, shape, dtype), draw(rng, (c, c), dtype)
    with invconv_path(path):
        y = cpu_invconv.forward(x, weight)
        gx, gw = cpu_invconv.backward(x, weight, gy)
    assert_close(y, ref_invconv.forward(x, weight), dtype, scale=c, what="y")
    ref_gx, ref_gw = ref_invconv.backward(x, weight, gy)
    assert_close(gx, ref_gx, dtype, scale=c, what="gx")
    assert_close(gw, ref_gw, dtype, scale=n * h * w, what="gw")


def test_invconv_numba_accepts_strided_input():
    rng = np.random.default_rng(0)
    full = rng.standard_normal((2, 3, 5, 4))
    x = full[:, :, 1:, ::2]  # not C-contiguous
    weight = rng.standard_normal((3, 3))
    for path in ("loops", "matmul"):
        with invconv_path(path):
            np.testing.assert_allclose(cpu_invconv.forward(x, weight), ref_invconv.forward(x, weight), rtol=1e-12,
                                       atol=1e-12)
            for a, b in zip(cpu_invconv.backward(x, weight, x), ref_invconv.backward(x, weight, x)):
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=EXAMPLES)
@given(c=channels, seed=seeds)
def test_lu_numba_matches_twin(dtype, c, seed):
    rng = np.random.default_rng(seed)
    args = lu_inputs(rng, c, dtype)
    gw = draw(rng, (c, c), dtype)
    # |entries| of L·Ũ are sums of c products of O(1) and O(e^{|log s|}) factors: scale the tolerance by c·max|s|
    scale = c * float(np.exp(np.abs(args[4].astype(np.float64))).max())
    assert_close(cpu_lu.weight(*args), ref_lu.weight(*args), dtype, scale=scale, what="W")
    for got, want, what in zip(cpu_lu.weight_backward(*args, gw), ref_lu.weight_backward(*args, gw),
                               ("g_lower", "g_upper", "g_log_s")):
        assert_close(got, want, dtype, scale=scale, what=what)


# ---------------------------------------------------------------------------------------------- twins vs references
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=EXAMPLES)
@given(shape=shapes, seed=seeds)
def test_invconv_twin_is_a_1x1_convolution(dtype, shape, seed):
    rng = np.random.default_rng(seed)
    n, c, h, w = shape
    x, gy, weight = draw(rng, shape, dtype), draw(rng, shape, dtype), draw(rng, (c, c), dtype)
    x64, gy64, w64 = x.astype(np.float64), gy.astype(np.float64), weight.astype(np.float64)
    with nflow.backend("numpy"):
        conv = F.conv2d(Tensor(x), Tensor(weight.reshape(c, c, 1, 1))).data
    y = ref_invconv.forward(x, weight)
    assert_close(y, conv, dtype, scale=c, what="twin vs conv2d")
    assert_close(y, np.einsum("oi,nihw->nohw", w64, x64).astype(dtype), dtype, scale=c, what="twin vs einsum")
    gx, gw = ref_invconv.backward(x, weight, gy)
    assert_close(gx, np.einsum("oi,nohw->nihw", w64, gy64).astype(dtype), dtype, scale=c, what="gx vs einsum")
    assert_close(gw, np.einsum("nohw,nihw->oi", gy64, x64).astype(dtype), dtype, scale=n * h * w,
                 what="gw vs einsum")


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=EXAMPLES)
@given(c=channels, seed=seeds)
def test_lu_twin_is_the_product_of_its_factors(dtype, c, seed):
    rng = np.random.default_rng(seed)
    perm, lower, upper, sign_s, log_s = lu_inputs(rng, c, dtype)
    # L, Ũ assembled entry by entry, in float64, from the definitions (eq. 10)
    s = sign_s.astype(np.float64) * np.exp(log_s.astype(np.float64))
    lo, up = np.zeros((c, c)), np.zeros((c, c))
    for i in range(c):
        for j in range(c):
            lo[i, j] = 1.0 if i == j else (float(lower[i, j]) if i > j else 0.0)
            up[i, j] = s[i] if i == j else (float(upper[i, j]) if i < j else 0.0)
    expected = perm.astype(np.float64) @ lo @ up
    scale = c * float(np.abs(s).max())
    assert_close(ref_lu.weight(perm, lower, upper, sign_s, log_s), expected.astype(dtype), dtype, scale=scale)
    # log|det W| = Σ log|s| (the layer relies on it) and sign det W = det P · Π sign(s)
    sign, logabs = np.linalg.slogdet(expected)
    np.testing.assert_allclose(logabs, log_s.astype(np.float64).sum(), rtol=1e-10, atol=1e-10)
    assert sign == np.linalg.det(perm.astype(np.float64)) * np.prod(sign_s.astype(np.float64))


def test_lu_twin_rebuilds_the_decomposed_matrix():
    from nflow.flows.invconv import lu_decompose
    rng = np.random.default_rng(5)
    w = rng.standard_normal((6, 6))
    p, lower, upper = lu_decompose(w)
    s = np.diag(upper)
    for module in (ref_lu, cpu_lu):
        rebuilt = module.weight(p, lower, upper, np.sign(s), np.log(np.abs(s)))
        np.testing.assert_allclose(rebuilt, w, rtol=0, atol=1e-12 * 6 * np.abs(w).max())


def _invconv_sum(x, w):
    return F.sum(invconv(x, w) * invconv(x, w), axis=(1, 2, 3))


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("c", [2, 5])  # 2: the Numba loops; 5: np.matmul for the map, loops for gW
def test_invconv_node_gradients_against_central_differences(backend, c):
    rng = np.random.default_rng(c)
    x = Tensor(rng.standard_normal((2, c, 3, 2)), requires_grad=True)
    w = Tensor(rng.standard_normal((c, c)), requires_grad=True)
    with nflow.backend(backend):
        assert nflow.gradcheck(lambda a, b: invconv(a, b), [x, w])
        assert nflow.gradcheck(_invconv_sum, [x, w])


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("c", [1, 4])
def test_lu_node_gradients_against_central_differences(backend, c):
    rng = np.random.default_rng(10 + c)
    perm, lower, upper, sign_s, log_s = lu_inputs(rng, c, np.float64)
    params = [Tensor(a, requires_grad=True) for a in (lower, upper, log_s)]
    with nflow.backend(backend):
        assert nflow.gradcheck(lambda lo, up, ls: lu_weight(perm, lo, up, sign_s, ls), params)
        # the masked-away entries (diagonal and above of lower, diagonal and below of upper) get exactly zero
        for p in params:
            p.grad = None
        lu_weight(perm, params[0], params[1], sign_s, params[2]).backward(rng.standard_normal((c, c)))
    assert np.all(np.triu(params[0].grad) == 0) and np.all(np.tril(params[1].grad) == 0)


# ---------------------------------------------------------------------------------------------- the layer
@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("lu", [True, False])
def test_invconv_layer_gradients_against_central_differences(backend, lu):
    rng = np.random.default_rng(2)
    with nflow.backend(backend):
        layer = InvConv1x1(3, lu=lu, dtype=np.float64, rng=rng)
        x = Tensor(rng.standard_normal((2, 3, 2, 3)), requires_grad=True)
        params = list(layer.parameters())

        def forward_and_inverse(x_, *_):
            y, logdet = layer.forward(x_)
            back, logdet_inverse = layer.inverse(y * 1.5)
            return F.sum(y * back, axis=(1, 2, 3)) + logdet + 0.5 * logdet_inverse

        assert nflow.gradcheck(forward_and_inverse, [x] + params)


def _old_weight(layer):
    """W as InvConv1x1 composed it from generic ops before the ``lu`` node: masks, exp, two matmuls."""
    eye = Tensor(np.eye(layer.channels, dtype=layer.lower.dtype))
    mask = Tensor(np.tril(np.ones((layer.channels, layer.channels)), -1).astype(layer.lower.dtype))
    lower = layer.lower * mask + eye
    upper = layer.upper * Tensor(mask.data.T) + eye * (Tensor(layer.sign_s) * F.exp(layer.log_s))
    return Tensor(layer.permutation) @ (lower @ upper)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c", [2, 8])
def test_invconv_layer_equals_the_generic_ops_it_replaced(backend, dtype, c):
    rng = np.random.default_rng(3)
    with nflow.backend(backend):
        layer = InvConv1x1(c, lu=True, dtype=dtype, rng=rng)
        for p in layer.parameters():  # off the initial rotation, masked entries included
            p.data = p.data + (0.3 * rng.standard_normal(p.shape)).astype(dtype)
        x = rng.standard_normal((3, c, 4, 5)).astype(dtype)
        g = rng.standard_normal(x.shape).astype(dtype)
        results = []
        for build in ("node", "generic"):
            for p in layer.parameters():
                p.grad = None
            xt = Tensor(x, requires_grad=True)
            if build == "node":
                y, _ = layer.forward(xt)
            else:
                w = _old_weight(layer)
                y = F.conv2d(xt, F.reshape(w, (c, c, 1, 1)))
            y.backward(g)
            results.append([y.data, xt.grad] + [p.grad for p in (layer.lower, layer.upper, layer.log_s)])
    # y and gx: sums of c products; parameter gradients: sums over the 3·4·5 pixels times c
    scales = [c, c, 60 * c, 60 * c, 60 * c]
    for got, want, scale, what in zip(*results, scales, ("y", "gx", "g_lower", "g_upper", "g_log_s")):
        assert_close(to_numpy(got), to_numpy(want), dtype, scale=scale, what=what)


# ---------------------------------------------------------------------------------------------- errors
def test_invconv_kernels_name_the_wrong_shape_or_dtype():
    # one contract (kernels/reference/invconv.py: check), the same sentence from the twin and the Numba kernel
    x, w = np.zeros((2, 3, 4, 4)), np.eye(3)
    for module in (ref_invconv, cpu_invconv):
        with pytest.raises(ValueError, match=r"invconv kernel: x must have shape \(N, C, H, W\), got shape \(2, 3, 4\)"):
            module.forward(x[..., 0], w)
        with pytest.raises(ValueError, match=r"invconv kernel: w must have shape \(3, 3\) for x of shape "
                                             r"\(2, 3, 4, 4\), got \(2, 2\)"):
            module.forward(x, np.eye(2))
        with pytest.raises(TypeError, match="invconv kernel: w is float32 but x is float64"):
            module.forward(x, w.astype(np.float32))
        with pytest.raises(TypeError, match="invconv kernel: x must be float32 or float64, got int64"):
            module.forward(x.astype(np.int64), w)
        with pytest.raises(ValueError, match=r"invconv kernel: gy must have shape \(2, 3, 4, 4\) for x of shape "
                                             r"\(2, 3, 4, 4\), got \(2, 3, 4, 2\)"):
            module.backward(x, w, x[..., :2])
        with pytest.raises(TypeError, match="invconv kernel: gy is float32 but x is float64"):
            module.backward(x, w, x.astype(np.float32))


def test_lu_kernels_name_the_wrong_shape_or_dtype():
    perm, lower, upper, sign_s, log_s = lu_inputs(np.random.default_rng(0), 3, np.float64)
    for module in (ref_lu, cpu_lu):
        with pytest.raises(ValueError, match=r"lu kernel: upper must have shape \(3, 3\) for log_s of shape \(3,\), "
                                             r"got \(3, 2\)"):
            module.weight(perm, lower, upper[:, :2], sign_s, log_s)
        with pytest.raises(TypeError, match="lu kernel: sign_s is float32 but log_s is float64"):
            module.weight(perm, lower, upper, sign_s.astype(np.float32), log_s)
        with pytest.raises(ValueError, match=r"lu kernel: gw must have shape \(3, 3\)"):
            module.weight_backward(perm, lower, upper, sign_s, log_s, np.zeros((3, 4)))
        with pytest.raises(TypeError, match="lu kernel: log_s must be float32 or float64, got float16"):
            module.weight(perm, lower, upper, sign_s, log_s.astype(np.float16))


def test_graph_nodes_refuse_the_wrong_shape_or_dtype_on_every_backend():
    # the nodes do not check again: the kernel's contract speaks, whichever backend runs
    x = Tensor(np.zeros((2, 3, 4, 4)))
    perm, lower, upper, sign_s, log_s = lu_inputs(np.random.default_rng(0), 3, np.float64)
    for backend in CPU_BACKENDS:
        with nflow.backend(backend):
            with pytest.raises(ValueError, match=r"invconv kernel: w must have shape \(3, 3\) for x of shape "
                                                 r"\(2, 3, 4, 4\), got \(4, 4\)"):
                invconv(x, Tensor(np.eye(4)))
            with pytest.raises(TypeError, match="invconv kernel: w is float32 but x is float64"):
                invconv(x, Tensor(np.eye(3, dtype=np.float32)))
            with pytest.raises(ValueError, match=r"lu kernel: perm must have shape \(3, 3\) for log_s of shape "
                                                 r"\(3,\), got \(2, 2\)"):
                lu_weight(perm[:2, :2], Tensor(lower), Tensor(upper), sign_s, Tensor(log_s))


# ---------------------------------------------------------------------------------------------- CUDA
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_invconv_matches_twin(dtype):
    import cupy as cp

    from nflow.kernels.cuda import invconv as cuda_invconv

    rng = np.random.default_rng(7)
    # the last shape's W (128² float64 = 128 KiB) exceeds SHARED_WEIGHT_BYTES: the map falls back to the twin
    for shape in [(3, 4, 5, 5), (1, 1, 1, 1), (64, 16, 14, 14), (64, 48, 7, 7), (2, 128, 3, 3)]:
        n, c, h, w = shape
        x, gy, weight = (cp.asarray(draw(rng, s, dtype)) for s in (shape, shape, (c, c)))
        assert_close(cp.asnumpy(cuda_invconv.forward(x, weight)), cp.asnumpy(ref_invconv.forward(x, weight)),
                     dtype, scale=c, what=f"y {shape}")
        for got, want, scale in zip(cuda_invconv.backward(x, weight, gy), ref_invconv.backward(x, weight, gy),
                                    (c, n * h * w)):
            assert_close(cp.asnumpy(got), cp.asnumpy(want), dtype, scale=scale, what=f"backward {shape}")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_lu_matches_twin(dtype):
    import cupy as cp

    from nflow.kernels.cuda import lu as cuda_lu

    rng = np.random.default_rng(8)
    for c in (1, 4, 16, 48):
        args = [cp.asarray(a) for a in lu_inputs(rng, c, dtype)]
        gw = cp.asarray(draw(rng, (c, c), dtype))
        scale = c * float(cp.exp(cp.abs(args[4].astype(cp.float64))).max())
        assert_close(cp.asnumpy(cuda_lu.weight(*args)), cp.asnumpy(ref_lu.weight(*args)), dtype, scale=scale)
        for got, want in zip(cuda_lu.weight_backward(*args, gw), ref_lu.weight_backward(*args, gw)):
            assert_close(cp.asnumpy(got), cp.asnumpy(want), dtype, scale=scale)


# ---------------------------------------------------------------------------------------------- boundaries
# the channel counts at which the wrappers switch from loops to BLAS, below, at and above, without moving them
def around(boundary):
    """One below, at, one above, and the second run's edges: every branch and every tail length class."""
    return sorted({max(boundary - 1, 1), boundary, boundary + 1, 2 * boundary, 2 * boundary + 1})


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c", sorted(set(around(MAP_LOOP_MAX_CHANNELS) + around(WEIGHT_LOOP_MAX_CHANNELS))))
def test_invconv_loop_and_blas_paths(dtype, c):
    rng = np.random.default_rng(c)
    x = rng.standard_normal((2, c, 3, 5)).astype(dtype)
    w = (np.eye(c) + 0.3 * rng.standard_normal((c, c))).astype(dtype)
    gy = rng.standard_normal(x.shape).astype(dtype)
    rtol = 16 * np.finfo(dtype).eps if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(cpu_invconv.forward(x, w), ref_invconv.forward(x, w), rtol=rtol * c, atol=rtol * c)
    for got, want in zip(cpu_invconv.backward(x, w, gy), ref_invconv.backward(x, w, gy)):
        # ∂L/∂W sums N·H·W = 30 products per entry
        np.testing.assert_allclose(got, want, rtol=rtol * 30, atol=rtol * 30)
