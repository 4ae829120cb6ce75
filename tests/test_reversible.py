"""Memory-free backprop (nflow.reversible) against the stored-activation path, and its drift guard."""
import numpy as np
import pytest

import nflow
from nflow.models import NICE, Glow, RealNVP
from nflow.reversible import nll_and_backward, reconstruction_drift

MODELS = {
    "nice": lambda dtype: NICE((1, 4, 4), couplings=4, hidden=16, depth=2, dtype=dtype),
    "realnvp-vector": lambda dtype: RealNVP((2,), hidden=16, couplings=4, dtype=dtype),
    "realnvp-image": lambda dtype: RealNVP((1, 8, 8), scales=2, hidden=8, dtype=dtype),
    "glow-affine-lu": lambda dtype: Glow((1, 8, 8), levels=2, steps=2, hidden=8, dtype=dtype),
    "glow-additive-plain": lambda dtype: Glow((1, 8, 8), levels=2, steps=2, hidden=8, lu=False,
                                              coupling="additive", dtype=dtype),
}
# float32: both paths round differently (the reversible one rebuilds inputs), so gradients agree to a few
# float32 ulps relative to the gradient's scale, not bit for bit.
GRAD_RTOL = {np.float64: 1e-9, np.float32: 2e-4}


def _perturbed_model(name, dtype, seed=0):
    nflow.seed(seed)
    model = MODELS[name](dtype)
    rng = np.random.default_rng(seed + 1)
    for p in model.parameters():  # zero-initialised nets would make couplings trivial
        p.data += (0.05 * rng.standard_normal(p.shape)).astype(dtype)
    return model


def _input(model, n, seed):
    rng = np.random.default_rng(seed)
    if model.input_range is None:
        return rng.standard_normal((n,) + model.input_shape).astype(model.dtype)
    return rng.uniform(0.02, 0.98, size=(n,) + model.input_shape).astype(model.dtype)


def _grads(model, x, reversible, **kw):
    model.zero_grad()
    result = nll_and_backward(model, x, reversible=reversible, **kw)
    return result, [p.grad.copy() for p in model.parameters()]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_reversible_gradients_equal_stored_path(name, dtype):
    model = _perturbed_model(name, dtype)
    x = _input(model, 6, seed=3)
    model.log_prob(x)  # ActNorm's data-dependent initialisation happens on this first batch
    stored, g_stored = _grads(model, x, reversible=False)
    rev, g_rev = _grads(model, x, reversible=True)
    assert rev["fallback"] is False
    np.testing.assert_allclose(rev["loss"], stored["loss"], rtol=GRAD_RTOL[dtype])
    for (pname, _), a, b in zip(model.named_parameters(), g_stored, g_rev):
        scale = np.abs(a).max() + np.finfo(dtype).tiny
        assert np.abs(a - b).max() <= GRAD_RTOL[dtype] * scale, pname


def test_checkpointed_path_gives_the_same_gradients():
    model = _perturbed_model("glow-affine-lu", np.float64)
    x = _input(model, 4, seed=5)
    model.log_prob(x)
    _, g_stored = _grads(model, x, reversible=False)
    result, g_ckpt = _grads(model, x, reversible=True, checkpoint_every=3)
    assert result["checkpoint_every"] == 3
    for a, b in zip(g_stored, g_ckpt):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)


def test_drift_over_depth_is_bounded_at_32_steps_in_float32():
    nflow.seed(0)
    model = Glow((1, 8, 8), levels=2, steps=32, hidden=8, dtype=np.float32)
    rng = np.random.default_rng(1)
    for p in model.parameters():
        p.data += (0.05 * rng.standard_normal(p.shape)).astype(np.float32)
    x = rng.uniform(0.02, 0.98, size=(8, 1, 8, 8)).astype(np.float32)
    model.log_prob(x)
    drifts = reconstruction_drift(model, x)
    assert len(drifts) == 2 * (1 + 3 * 32 + 1) + 1  # centre + per level: squeeze, 32 steps of 3, split/prior
    # Measured ≈ 1e-6 (a handful of float32 ulps); 1e-4 leaves room for other BLAS builds but would catch a
    # wrong inverse (errors of order 1) or a systematic compounding error.
    assert max(drifts) < 1e-4


def test_drift_past_the_bound_falls_back_to_exact_copies():
    model = _perturbed_model("glow-affine-lu", np.float32)
    x = _input(model, 4, seed=7)
    model.log_prob(x)
    _, g_stored = _grads(model, x, reversible=False)
    # A bound no float32 rebuild can meet forces the fallback.
    result, g_rev = _grads(model, x, reversible=True, drift_tol=0.0)
    assert result["fallback"] is True and result["checkpoint_every"] is not None
    assert model.reversible_checkpoint_every == result["checkpoint_every"]
    for a, b in zip(g_stored, g_rev):
        assert np.abs(a - b).max() <= GRAD_RTOL[np.float32] * (np.abs(a).max() + 1e-30)


def test_batchnorm_flow_in_training_mode_is_refused():
    model = RealNVP((2,), hidden=8, couplings=2, batch_norm=True, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((8, 2))
    with pytest.raises(ValueError, match="BatchNormFlow"):
        nll_and_backward(model, x, reversible=True)
