"""What the property kit cannot see from outside a layer: BatchNormFlow's training-mode gradients (the batch's
statistics are part of the map), ActNorm's data-dependent start and its state, the 1x1 convolution's float64
log-det and inverse weight, negative determinants against NumPy's slogdet, its LU decomposition and its
inverse-weight cache, and a fresh sigmoid coupling's exact scale.

Round trips, log-dets against the per-sample Jacobian, gradients against central differences, backends and
memory-free backprop of every layer are checked through the public kit ``nflow.testing``
(``test_builtin_layers_through_kit.py``).
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nflow.functional as F
from flow_helpers import gradcheck, FLOAT64_RTOL, as_tensor, perturb, rel_err
from nflow.backend import to_numpy
from nflow.flows import ActNorm, AffineCoupling, BatchNormFlow, GlowNet, InvConv1x1
from nflow.flows.invconv import lu_decompose
from nflow.flows.actnorm import ACTNORM_EPS
from nflow.optim import Adam
from nflow.tensor import no_grad

channels = st.integers(2, 4)
seeds = st.integers(0, 2**32 - 1)


def _both_outputs(layer, direction):
    def fn(x, *params):
        y, logdet = getattr(layer, direction)(x)
        n = y.shape[0]
        return F.concat([F.reshape(y, (n, -1)), F.reshape(logdet, (n, 1))], axis=1)
    return fn


@settings(max_examples=4)
@given(n=st.integers(2, 4), c=channels, image=st.booleans(), seed=seeds)
def test_batchnorm_training_mode_gradients(n, c, image, seed):
    """In training mode the batch's statistics are part of the map: the gradient must include them."""
    rng = np.random.default_rng(seed)
    layer = perturb(BatchNormFlow(c, dtype=np.float64), rng)
    layer.train()
    x = rng.standard_normal((n, c, 2, 2) if image else (n, c)) * 2 + 1
    assert gradcheck(_both_outputs(layer, "forward"), [as_tensor(x, requires_grad=True)] + layer.parameters())


# ------------------------------------------------------------------------------------------------ ActNorm
@settings(max_examples=10)
@given(n=st.integers(2, 6), c=channels, image=st.booleans(), seed=seeds,
       loc=st.floats(-5, 5), scale=st.floats(0.1, 10), dtype=st.sampled_from([np.float32, np.float64]))
def test_actnorm_initialises_to_zero_mean_unit_variance(n, c, image, seed, loc, scale, dtype):
    rng = np.random.default_rng(seed)
    shape = (n, c, 3, 2) if image else (n, c)
    # per-channel offsets and scales, so one global normalisation would not pass
    x = (loc + rng.uniform(-3, 3, size=c).reshape((1, c) + (1,) * (len(shape) - 2))
         + scale * rng.uniform(0.5, 2, size=c).reshape((1, c) + (1,) * (len(shape) - 2))
         * rng.standard_normal(shape)).astype(dtype)
    layer = ActNorm(c, dtype=dtype)
    assert int(layer.initialised) == 0
    y, logdet = layer.forward(as_tensor(x))
    assert int(layer.initialised) == 1
    y = to_numpy(y.data).astype(np.float64)
    axes = (0,) + tuple(range(2, y.ndim))
    std = x.astype(np.float64).std(axis=axes)
    # ActNorm divides by std + ε (ε = ACTNORM_EPS keeps a constant channel finite), so the variance is
    # (std / (std + ε))² = 1 - O(ε/std): unit variance up to that documented ε, and zero mean.
    # Rounding of (x + b)·s: a few ulp of |x| (b is rounded to the dtype too), divided by std.
    rounding = 8 * np.finfo(dtype).eps * np.max(np.abs(x.astype(np.float64))) / np.min(std)
    np.testing.assert_allclose(y.mean(axis=axes), 0.0, atol=rounding)
    np.testing.assert_allclose(y.var(axis=axes), (std / (std + ACTNORM_EPS)) ** 2, rtol=0, atol=2 * rounding)
    assert np.all(np.abs(y.var(axis=axes) - 1.0) <= 2 * ACTNORM_EPS / std + 2 * rounding)
    # the log-det is that of the initialised map: P · Σ log s with s = 1/(std + ε) per channel
    pixels = int(np.prod(shape[2:])) if image else 1
    np.testing.assert_allclose(to_numpy(logdet.data), -pixels * np.log(std + ACTNORM_EPS).sum(),
                               rtol=1e-12 if dtype == np.float64 else 8 * np.finfo(np.float32).eps,
                               atol=1e-12 if dtype == np.float64 else 8 * np.finfo(np.float32).eps * pixels * c)
    # a second batch does not re-initialise
    bias = to_numpy(layer.bias.data).copy()
    layer.forward(as_tensor((x * 3 + 1).astype(dtype)))
    np.testing.assert_array_equal(to_numpy(layer.bias.data), bias)


def test_actnorm_initialised_flag_round_trips_through_state_dict():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((8, 3, 4, 4)) * 5 + 2).astype(np.float32)
    first = ActNorm(3)
    first.forward(as_tensor(x))
    state = first.state_dict()
    assert "initialised" in state and int(state["initialised"]) == 1
    second = ActNorm(3)
    second.load_state_dict(state)
    assert int(second.initialised) == 1
    other = (rng.standard_normal((8, 3, 4, 4)) * 0.1 - 7).astype(np.float32)
    y_second, _ = second.forward(as_tensor(other))  # training mode: would re-initialise if the flag were lost
    y_first, _ = first.forward(as_tensor(other))
    np.testing.assert_array_equal(to_numpy(y_second.data), to_numpy(y_first.data))
    np.testing.assert_array_equal(to_numpy(second.bias.data), to_numpy(first.bias.data))


# ------------------------------------------------------------------------------------------------ InvConv1x1
@settings(max_examples=10)
@given(c=st.integers(2, 8), seed=seeds, cond=st.floats(1, 1e3))
def test_invconv_logdet_and_inverse_weight_are_float64_in_a_float32_model(c, seed, cond):
    """log|det W| and W⁻¹ come from float64 arithmetic on the float32 weight, then are cast to float32."""
    rng = np.random.default_rng(seed)
    layer = InvConv1x1(c, lu=False, dtype=np.float32, rng=rng)
    # a weight with condition number ``cond``: float32 arithmetic would lose log2(cond) more bits
    u, _ = np.linalg.qr(rng.standard_normal((c, c)))
    v, _ = np.linalg.qr(rng.standard_normal((c, c)))
    w32 = (u @ np.diag(np.geomspace(1.0, 1.0 / cond, c)) @ v.T).astype(np.float32)
    layer.weight.data = w32.copy()
    w64 = w32.astype(np.float64)
    sign, logabs = np.linalg.slogdet(w64)
    with no_grad():
        assert to_numpy(layer.log_abs_det().data).dtype == np.float32
        assert to_numpy(layer.log_abs_det().data) == np.float32(logabs)
        # the inverse map of a one-hot pixel e_j is column j of W⁻¹ (products with 1 and 0 are exact)
        eye = np.eye(c, dtype=np.float32).reshape(1, c, 1, c)
        x, logdet = layer.inverse(as_tensor(eye))
    w_inv = to_numpy(x.data)[0, :, 0, :]
    np.testing.assert_array_equal(w_inv, np.linalg.inv(w64).astype(np.float32))
    np.testing.assert_allclose(to_numpy(logdet.data), -c * np.float32(logabs), rtol=4 * np.finfo(np.float32).eps)


@settings(max_examples=20)
@given(c=st.integers(1, 8), seed=seeds, singular=st.booleans())
def test_lu_decomposition_reconstructs_the_matrix(c, seed, singular):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((c, c))
    if singular and c > 1:
        w[:, rng.integers(c)] = 0.0  # a zero column: singular, the elimination must skip it
    p, lower, upper = lu_decompose(w)
    assert np.array_equal(np.sort(p, axis=0), np.vstack([np.zeros((c - 1, c)), np.ones((1, c))]))  # one 1 per column
    assert np.array_equal(p.sum(axis=1), np.ones(c))
    np.testing.assert_array_equal(np.diag(lower), np.ones(c))
    np.testing.assert_array_equal(np.triu(lower, 1), 0.0)
    np.testing.assert_array_equal(np.tril(upper, -1), 0.0)
    assert np.max(np.abs(lower)) <= 1.0 + 1e-12  # partial pivoting bounds the multipliers
    np.testing.assert_allclose(p @ lower @ upper, w, rtol=0, atol=1e-12 * max(1.0, np.max(np.abs(w))) * c)


@pytest.mark.parametrize("lu", [True, False])
def test_invconv_weight_from_lu_factors_equals_the_initial_rotation(lu):
    rng = np.random.default_rng(3)
    layer = InvConv1x1(5, lu=lu, dtype=np.float64, rng=np.random.default_rng(3))
    q, _ = np.linalg.qr(rng.standard_normal((5, 5)))  # the same draw random_rotation makes
    with no_grad():
        w = to_numpy(layer.weight_matrix().data)
    np.testing.assert_allclose(w, q, atol=1e-12)
    np.testing.assert_allclose(w @ w.T, np.eye(5), atol=1e-12)


@pytest.mark.parametrize("lu", [True, False])
def test_invconv_inverse_cache_follows_an_optimizer_step(lu):
    """The inverse weight is cached between inverse calls; after an update of W it must be recomputed."""
    rng = np.random.default_rng(7)
    layer = InvConv1x1(4, lu=lu, dtype=np.float64, rng=rng)
    x = rng.standard_normal((2, 4, 3, 3))
    with no_grad():
        y, _ = layer.forward(as_tensor(x))
        layer.inverse(y)  # fills the cache
    weight_before = to_numpy(layer.weight_matrix().data).copy()
    opt = Adam(layer.parameters(), lr=0.05)
    for _ in range(2):
        opt.zero_grad()
        out, logdet = layer.forward(as_tensor(x))
        loss = F.sum(out * out) - F.sum(logdet)
        loss.backward()
        opt.step()
    with no_grad():
        assert np.max(np.abs(to_numpy(layer.weight_matrix().data) - weight_before)) > 1e-3
        y, _ = layer.forward(as_tensor(x))
        x_back, _ = layer.inverse(y)
    assert rel_err(to_numpy(x_back.data), x) <= FLOAT64_RTOL


# ------------------------------------------------------------------------------------------------ det W < 0
def _negative_det_rotation(rng, c):
    q, _ = np.linalg.qr(rng.standard_normal((c, c)))
    if np.linalg.det(q) > 0:
        q[0] = -q[0]
    return q


@settings(max_examples=8)
@given(c=st.integers(1, 4), h=st.sampled_from([1, 3]), w=st.sampled_from([1, 3]), n=st.integers(1, 2),
       seed=st.integers(0, 2**32 - 1))
def test_plain_invconv_with_negative_det_weight(c, h, w, n, seed):
    """det W < 0: log|det W| against NumPy's slogdet, the layer's log-det H·W·log|det W| and its inverse's minus
    that. (The log-det against the full Jacobian, det < 0 included, is the kit's property 2: the det<0 rows of
    test_builtin_layers_through_kit.py.)"""
    rng = np.random.default_rng(seed)
    layer = InvConv1x1(c, lu=False, dtype=np.float64, rng=rng)
    weight = _negative_det_rotation(rng, c) + 0.1 * rng.standard_normal((c, c))
    if np.linalg.det(weight) > 0:  # the noise flipped it back (rare): flip a row again
        weight[0] = -weight[0]
    layer.weight.data = weight.copy()
    sign, logabs = np.linalg.slogdet(weight)
    assert sign == -1
    with no_grad():
        np.testing.assert_allclose(float(to_numpy(layer.log_abs_det().data)), logabs, rtol=1e-12, atol=1e-12)
    x = rng.standard_normal((n, c, h, w))
    with no_grad():
        y, logdet = layer.forward(as_tensor(x))
        x_back, logdet_inverse = layer.inverse(y)
    np.testing.assert_allclose(to_numpy(logdet.data), h * w * logabs, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(to_numpy(x_back.data), x, rtol=0, atol=1e-10 * max(1, np.abs(x).max()))
    np.testing.assert_allclose(to_numpy(logdet_inverse.data), -h * w * logabs, rtol=1e-12, atol=1e-12)


@settings(max_examples=8)
@given(c=st.integers(1, 5), seed=st.integers(0, 2**32 - 1))
def test_lu_invconv_with_negative_det_weight(c, seed):
    """LU form with signs chosen so det W < 0: log|det W| = Σ log|s| still, checked with numpy's slogdet."""
    rng = np.random.default_rng(seed)
    layer = perturb(InvConv1x1(c, lu=True, dtype=np.float64, rng=rng), rng)
    with no_grad():
        sign_before = np.linalg.slogdet(to_numpy(layer.weight_matrix().data))[0]
    if sign_before > 0:  # flip one sign of s: det W = det P · Π sign(s) · Π |s| changes sign
        layer.sign_s = layer.sign_s.copy()
        layer.sign_s[0] = -layer.sign_s[0]
    with no_grad():
        weight = to_numpy(layer.weight_matrix().data)
        sign, logabs = np.linalg.slogdet(weight)
        assert sign == -1
        np.testing.assert_allclose(float(to_numpy(layer.log_abs_det().data)), logabs, rtol=1e-12, atol=1e-12)
    x = rng.standard_normal((2, c, 1, 3))
    with no_grad():
        _, logdet = layer.forward(as_tensor(x))
    np.testing.assert_allclose(to_numpy(logdet.data), 3 * logabs, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------------------------ Glow's coupling at init
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("parity", [0, 1])
def test_fresh_sigmoid_coupling_scales_by_sigmoid_two(dtype, parity):
    """A zero-initialised Glow coupling: y_a = x_a bit for bit and y_b = x_b · sigmoid(2) (to 2 ulp)."""
    rng = np.random.default_rng(parity)
    layer = AffineCoupling(5, GlowNet(2, 6, 8, dtype=dtype), parity=parity, dtype=dtype)
    x = rng.standard_normal((3, 5, 4, 4)).astype(dtype)
    with no_grad():
        y, logdet = layer.forward(as_tensor(x))
    y = to_numpy(y.data)
    cond = slice(0, 2) if parity == 0 else slice(3, 5)
    trans = slice(2, 5) if parity == 0 else slice(0, 3)
    np.testing.assert_array_equal(y[:, cond], x[:, cond])
    s = 1.0 / (1.0 + np.exp(-2.0))
    np.testing.assert_allclose(y[:, trans], (x[:, trans].astype(np.float64) * s).astype(dtype),
                               rtol=2 * np.finfo(dtype).eps, atol=0)
    np.testing.assert_allclose(to_numpy(logdet.data), 3 * 16 * np.log(s), rtol=8 * np.finfo(dtype).eps)
