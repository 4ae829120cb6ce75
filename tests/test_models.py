"""The models (NICE, RealNVP on vectors and images, Glow affine/additive with LU or plain 1x1 convolutions, MAF and
IAF on vectors and images):
decode(encode(x)) == x with every level's log-dets cancelling; gradients of log_prob against central
differences; a fresh model's couplings and samples; sampling at temperature 0; state dicts that round-trip
bit for bit; bits per dimension against a hand computation.

Models under test have every parameter perturbed with 0.1·N(0, 1) (``flow_helpers.perturb``) unless the test
is about the freshly built model.
"""
import importlib
import math
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nflow
import nflow.functional as F
from flow_helpers import (gradcheck, FLOAT64_RTOL, as_tensor, count_layers, float32_rtol, gaussian_logpdf, logistic_logpdf,
                          perturb, rel_err)
from nflow.backend import to_numpy
from nflow.flows import ActNorm, AdditiveCoupling, AffineCoupling
from nflow.flows.preprocess import LOGIT_ALPHA
from nflow.models import IAF, MAF, NICE, Glow, RealNVP
from nflow.tensor import no_grad

gradcheck_module = importlib.import_module("nflow.gradcheck")
seeds = st.integers(0, 2**32 - 1)


def small_models(dtype):
    return {
        "NICE": lambda: NICE((1, 2, 4), couplings=4, hidden=8, depth=2, dtype=dtype),
        "RealNVP/vector": lambda: RealNVP((2,), hidden=8, couplings=4, dtype=dtype),
        "RealNVP/image": lambda: RealNVP((1, 4, 4), scales=2, hidden=4, dtype=dtype),
        "RealNVP/image/batchnorm": lambda: RealNVP((2, 4, 4), scales=2, hidden=4, batch_norm=True, dtype=dtype),
        "Glow/affine/lu": lambda: Glow((2, 4, 4), levels=2, steps=2, hidden=4, lu=True, dtype=dtype),
        "Glow/affine/plain": lambda: Glow((2, 4, 4), levels=2, steps=2, hidden=4, lu=False, dtype=dtype),
        "Glow/additive/lu": lambda: Glow((1, 8, 8), levels=3, steps=2, hidden=4, lu=True, coupling="additive",
                                         dtype=dtype),
        "Glow/additive/plain": lambda: Glow((3, 4, 4), levels=1, steps=3, hidden=4, lu=False, coupling="additive",
                                            dtype=dtype),
        "MAF/vector": lambda: MAF((3,), layers=3, hidden=8, depth=2, dtype=dtype),
        "MAF/image/batchnorm": lambda: MAF((1, 2, 3), layers=2, hidden=8, depth=1, batch_norm=True, dtype=dtype),
        "IAF/vector/random-order": lambda: IAF((4,), layers=3, hidden=8, depth=2, order="random", dtype=dtype),
        "IAF/image": lambda: IAF((1, 2, 2), layers=2, hidden=8, depth=1, dtype=dtype),
    }


MODEL_NAMES = list(small_models(np.float64))


def build(name, seed, dtype=np.float64, fresh=False):
    nflow.seed(seed)
    model = small_models(dtype)[name]()
    if not fresh:
        perturb(model, np.random.default_rng(seed))
    return model.eval()


def draw_x(model, rng, n):
    return rng.uniform(0.02, 0.98, size=(n,) + model.input_shape).astype(model.dtype)


def as_list(z):
    return z if isinstance(z, list) else [z]


# ------------------------------------------------------------------------------------------------ invertibility
@pytest.mark.parametrize("name", MODEL_NAMES)
@settings(max_examples=3)
@given(n=st.integers(1, 3), seed=seeds)
def test_decode_of_encode_float64(name, n, seed):
    model = build(name, seed)
    x = draw_x(model, np.random.default_rng(seed + 1), n)
    z = model.encode(x)
    assert sum(a[0].size for a in as_list(z)) == x[0].size
    assert rel_err(model.decode(z), x) <= FLOAT64_RTOL


@pytest.mark.parametrize("name", MODEL_NAMES)
@settings(max_examples=3)
@given(n=st.integers(1, 3), seed=seeds)
def test_decode_of_encode_float32(name, n, seed):
    """float32 tolerance: float32_rtol(depth) = 16 ulp per flow layer, depth = the model's number of layers."""
    model = build(name, seed, np.float32)
    x = draw_x(model, np.random.default_rng(seed + 1), n)
    x_back = model.decode(model.encode(x))
    assert x_back.dtype == np.float32
    assert rel_err(x_back, x) <= float32_rtol(count_layers(model))


@pytest.mark.parametrize("name", MODEL_NAMES)
@settings(max_examples=2)
@given(n=st.integers(1, 3), seed=seeds)
def test_every_level_log_dets_cancel(name, n, seed):
    """Through the model's own preprocessing and levels (half the channels leave after each level but the
    last): each piece's forward and inverse log-dets sum to zero and its inverse gives its input back."""
    model = build(name, seed)
    x = draw_x(model, np.random.default_rng(seed + 1), n)
    pieces = [model.preprocess] + list(model.levels)
    h = as_tensor(x)
    with no_grad():
        for i, piece in enumerate(pieces):
            y, ld_forward = piece.forward(h)
            h_back, ld_inverse = piece.inverse(y)
            assert rel_err(h_back.data, h.data) <= FLOAT64_RTOL
            scale = 1 + np.abs(to_numpy(ld_forward.data))
            assert np.all(np.abs(to_numpy((ld_forward + ld_inverse).data)) <= FLOAT64_RTOL * scale)
            h = F.split(y, 2, axis=1)[0] if 0 < i < len(pieces) - 1 else y


# ------------------------------------------------------------------------------------------------ gradients
GRAD_MODELS = {
    "NICE": lambda: NICE((4,), couplings=4, hidden=8, depth=2, dtype=np.float64),
    "RealNVP/vector": lambda: RealNVP((2,), hidden=8, couplings=4, dtype=np.float64),
    "RealNVP/image": lambda: RealNVP((1, 4, 4), scales=2, hidden=2, dtype=np.float64),
    "RealNVP/image/batchnorm": lambda: RealNVP((1, 2, 2), scales=2, hidden=2, batch_norm=True, dtype=np.float64),
    "Glow/affine/lu": lambda: Glow((1, 4, 4), levels=2, steps=1, hidden=2, lu=True, dtype=np.float64),
    "Glow/affine/plain": lambda: Glow((1, 4, 4), levels=2, steps=1, hidden=2, lu=False, dtype=np.float64),
    "Glow/additive/plain": lambda: Glow((1, 4, 4), levels=2, steps=1, hidden=2, lu=False, coupling="additive",
                                        dtype=np.float64),
    "MAF/vector": lambda: MAF((3,), layers=2, hidden=6, depth=2, dtype=np.float64),
    "MAF/image/batchnorm": lambda: MAF((1, 2, 2), layers=2, hidden=6, depth=1, batch_norm=True, dtype=np.float64),
    "IAF/vector": lambda: IAF((3,), layers=2, hidden=6, depth=2, order="random", dtype=np.float64),
}


# Only the batch-norm flow behaves differently in training mode (batch statistics inside the map).
GRAD_CASES = [(name, False) for name in GRAD_MODELS] + [("RealNVP/image/batchnorm", True),
                                                         ("MAF/image/batchnorm", True)]


@pytest.mark.parametrize("name,training", GRAD_CASES,
                         ids=[f"{n}-{'train' if t else 'eval'}" for n, t in GRAD_CASES])
@settings(max_examples=1)
@given(n=st.integers(2, 3), seed=seeds)
def test_log_prob_gradients_match_central_differences(name, training, n, seed):
    """∂ log_prob / ∂x and ∂ log_prob / ∂θ for every parameter θ, in float64 (nflow.gradcheck). To keep CI
    fast, tensors of more than 16 elements are checked along 2 random unit directions each (the rest element
    by element): a wrong gradient anywhere in such a tensor shows up along almost every direction."""
    nflow.seed(seed)
    rng = np.random.default_rng(seed)
    model = perturb(GRAD_MODELS[name](), rng).train(training)
    x = nflow.tensor(draw_x(model, rng, n), requires_grad=True, dtype=np.float64)
    params = model.parameters()
    with mock.patch.object(gradcheck_module, "MAX_ELEMENTWISE", 16), \
            mock.patch.object(gradcheck_module, "N_DIRECTIONS", 2):
        assert gradcheck(lambda x, *p: model.log_prob(x), [x] + params)
    assert all(p.grad is not None for p in params)


# ------------------------------------------------------------------------------------------------ fresh models
@pytest.mark.parametrize("coupling", ["affine", "additive"])
@settings(max_examples=3)
@given(seed=seeds, lu=st.booleans())
def test_fresh_glow_couplings_start_at_the_identity(coupling, seed, lu):
    """Zero-initialised nets: every coupling passes its conditioning half through unchanged, and transforms the
    other half by exactly x_b·sigmoid(2) (affine; to 2 ulp) or not at all (additive)."""
    nflow.seed(seed)
    model = Glow((2, 8, 8), levels=2, steps=2, hidden=8, lu=lu, coupling=coupling)
    couplings = [m for m in model.modules() if isinstance(m, (AffineCoupling, AdditiveCoupling))]
    assert len(couplings) == 4
    rng = np.random.default_rng(seed)
    s = 1.0 / (1.0 + math.exp(-2.0))
    for layer in couplings:
        c = layer.channels
        x = rng.standard_normal((2, c, 2, 2)).astype(np.float32)
        with no_grad():
            y, logdet = layer.forward(as_tensor(x))
        y = to_numpy(y.data)
        np.testing.assert_array_equal(y[:, :c // 2], x[:, :c // 2])
        if coupling == "additive":
            np.testing.assert_array_equal(y, x)
            np.testing.assert_array_equal(to_numpy(logdet.data), 0.0)
        else:
            expected = (x[:, c // 2:].astype(np.float64) * s).astype(np.float32)
            np.testing.assert_allclose(y[:, c // 2:], expected, rtol=2 * np.finfo(np.float32).eps, atol=0)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_fresh_model_samples_are_finite(name):
    model = build(name, 0, np.float32, fresh=True)
    model.train()
    for temperature in (1.0, 0.7):
        x = model.sample(5, temperature=temperature, seed=1)
        assert x.shape == (5,) + model.input_shape and x.dtype == np.float32
        assert np.all(np.isfinite(x))
    assert model.training  # sample() puts the model back in the mode it found


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_temperature_zero_gives_the_decoded_prior_mean(name):
    model = build(name, 3, np.float64)
    shapes = [a.shape[1:] for a in as_list(model.encode(draw_x(model, np.random.default_rng(0), 1)))]
    zeros = [np.zeros((4,) + s) for s in shapes]
    x0 = model.sample(4, temperature=0.0, seed=11)
    np.testing.assert_array_equal(x0, model.decode(zeros if len(zeros) > 1 else zeros[0]))
    np.testing.assert_array_equal(x0, np.broadcast_to(x0[:1], x0.shape))  # no randomness left
    warm = model.sample(2, temperature=0.5, seed=11)  # while T > 0 still draws different samples
    assert np.max(np.abs(warm[0] - warm[1])) > 1e-6


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_latent_shapes_are_those_of_encoded_latents_and_probed_once(name):
    """The shapes equal those of a real batch's latents; later calls (every sample()) run no forward pass."""
    model = build(name, 4, np.float64)
    encoded = [a.shape[1:] for a in as_list(model.encode(draw_x(model, np.random.default_rng(0), 3)))]
    probe = mock.patch.object(type(model), "forward_latents", autospec=True, side_effect=type(model).forward_latents)
    with probe as forward_latents:
        assert model.latent_shapes() == encoded
        model.sample(2, seed=0)
        model.sample(3, temperature=0.5, seed=1)
        assert model.latent_shapes() == encoded
    assert forward_latents.call_count == 1


def test_latent_shapes_follow_a_change_of_layers():
    """Kept shapes are not reused once the layers changed: Glow's levels swapped for a three-level Glow's."""
    nflow.seed(0)
    two, three = (Glow((1, 8, 8), levels=levels, steps=1, hidden=4) for levels in (2, 3))
    assert len(two.latent_shapes()) == 2
    two.levels = three.levels
    assert two.latent_shapes() == three.latent_shapes() == [(2, 4, 4), (4, 2, 2), (16, 1, 1)]
    assert two.sample(2, seed=0).shape == (2, 1, 8, 8)


def test_temperature_zero_of_fresh_realnvp_is_the_logit_inverse_of_zero():
    """A fresh RealNVP is the identity after its logit, so T = 0 gives logit⁻¹(0) mapped back: (½ - α)/(1 - 2α)."""
    model = RealNVP((1, 4, 4), scales=2, hidden=4)
    x0 = model.sample(3, temperature=0.0)
    np.testing.assert_allclose(x0, (0.5 - LOGIT_ALPHA) / (1 - 2 * LOGIT_ALPHA), rtol=1e-6)


# ------------------------------------------------------------------------------------------------ state dicts
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_state_dict_round_trips_bit_for_bit(name):
    rng = np.random.default_rng(5)
    source = build(name, 1, np.float32)
    source.train()
    for m in source.modules():  # let ActNorm initialise from data, then move it off that start
        if isinstance(m, ActNorm):
            m.initialised = np.zeros((), dtype=np.int8)
    x = draw_x(source, rng, 6)
    source.log_prob(x)
    perturb(source, rng)
    target = build(name, 2, np.float32, fresh=True)
    target.train()
    state = source.state_dict()
    target.load_state_dict(state)
    for key, value in target.state_dict().items():
        np.testing.assert_array_equal(value, state[key], err_msg=key)
        assert value.dtype == state[key].dtype, key
    other = draw_x(source, rng, 4)  # a new batch in training mode: nothing may re-initialise
    for model in (source, target):
        model.eval()
    np.testing.assert_array_equal(to_numpy(target.log_prob(other).data), to_numpy(source.log_prob(other).data))
    source.train()
    target.train()
    np.testing.assert_array_equal(to_numpy(target.log_prob(other).data), to_numpy(source.log_prob(other).data))
    np.testing.assert_array_equal(target.sample(3, seed=4), source.sample(3, seed=4))


def test_glow_actnorm_flags_survive_a_checkpoint():
    source = Glow((1, 8, 8), levels=2, steps=2, hidden=8)
    x = np.random.default_rng(0).uniform(0, 1, size=(8, 1, 8, 8)).astype(np.float32)
    source.log_prob(x)  # training mode: the first batch initialises every ActNorm
    state = source.state_dict()
    flags = [k for k in state if k.endswith("initialised")]
    assert len(flags) == 4 and all(int(state[k]) == 1 for k in flags)
    target = Glow((1, 8, 8), levels=2, steps=2, hidden=8)
    target.load_state_dict(state)
    y = np.random.default_rng(1).uniform(0.4, 0.6, size=(8, 1, 8, 8)).astype(np.float32)  # other statistics
    np.testing.assert_array_equal(to_numpy(target.log_prob(y).data), to_numpy(source.log_prob(y).data))


# ------------------------------------------------------------------------------------------------ bits/dim
def test_bits_per_dim_of_fresh_nice_by_hand():
    """A fresh NICE is the identity (zero-initialised couplings, scaling exp(0)) under a logistic prior, so
    log p(x) = Σ log logistic(x_i) and bpd = -log p/(D ln 2) + log2(256), all computed here in NumPy."""
    model = NICE((1, 4, 4), couplings=4, hidden=8, depth=2, dtype=np.float64)
    x = np.random.default_rng(0).uniform(0, 1, size=(5, 1, 4, 4))
    log_p = logistic_logpdf(x)
    np.testing.assert_allclose(to_numpy(model.log_prob(x).data), log_p, rtol=1e-12)
    expected = np.mean(-log_p / (16 * np.log(2)) + 8.0)
    assert abs(model.bits_per_dim(x) - expected) <= 1e-12 * expected
    assert abs(model.bits_per_dim(x, n_bins=2) - np.mean(-log_p / (16 * np.log(2)) + 1.0)) <= 1e-12 * expected


def test_bits_per_dim_of_fresh_realnvp_by_hand():
    """A fresh RealNVP image model is logit preprocessing then the identity (zero nets give s = exp(γ·tanh 0) = 1,
    t = 0) under a standard Gaussian: log p(x) = Σ [log(1-2α) - log p - log(1-p) + log N(logit p; 0, 1)]."""
    model = RealNVP((2, 4, 4), scales=2, hidden=4, dtype=np.float64)
    x = np.random.default_rng(1).uniform(0, 1, size=(3, 2, 4, 4))
    a = LOGIT_ALPHA
    p = a + (1 - 2 * a) * x
    logit = np.log(p) - np.log1p(-p)
    log_p = (math.log(1 - 2 * a) - np.log(p) - np.log1p(-p)).reshape(3, -1).sum(axis=1) + gaussian_logpdf(logit)
    np.testing.assert_allclose(to_numpy(model.log_prob(x).data), log_p, rtol=1e-12)
    d = 2 * 4 * 4
    assert abs(model.bits_per_dim(x) - np.mean(-log_p / (d * np.log(2)) + 8.0)) <= 1e-10


@pytest.mark.parametrize("model_class", [MAF, IAF])
def test_log_prob_of_fresh_maf_and_iaf_by_hand(model_class):
    """A fresh MAF / IAF on images is the MAF paper's logit (λ = 1e-6) then the identity (zero-initialised MADE
    outputs: μ = 0, α = 0) under a standard Gaussian, so log p(x) is the logit's log-det plus log N(logit p; 0, 1),
    computed here in NumPy; and sampling at T = 0 gives logit⁻¹(0) mapped back, (½ - λ)/(1 - 2λ)."""
    model = model_class((1, 3, 2), layers=2, hidden=8, depth=2, dtype=np.float64)
    x = np.random.default_rng(2).uniform(0, 1, size=(3, 1, 3, 2))
    a = 1e-6
    p = a + (1 - 2 * a) * x
    logit = np.log(p) - np.log1p(-p)
    log_p = (math.log(1 - 2 * a) - np.log(p) - np.log1p(-p)).reshape(3, -1).sum(axis=1) + gaussian_logpdf(logit)
    np.testing.assert_allclose(to_numpy(model.log_prob(x).data), log_p, rtol=1e-12)
    np.testing.assert_allclose(model.sample(2, temperature=0.0), (0.5 - a) / (1 - 2 * a), rtol=1e-12)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_bits_per_dim_is_the_stated_transform_of_log_prob(name):
    model = build(name, 4)
    x = draw_x(model, np.random.default_rng(4), 3)
    log_p = to_numpy(model.log_prob(x).data)
    d = int(np.prod(model.input_shape))
    for n_bins in (256, 32):
        expected = float(np.mean(-log_p / (d * math.log(2)) + math.log2(n_bins)))
        assert abs(model.bits_per_dim(x, n_bins=n_bins) - expected) <= 1e-12 * max(1.0, abs(expected))
    if hasattr(nflow, "bits_per_dim"):  # the function API.md names, where this checkout exports it
        np.testing.assert_allclose(nflow.bits_per_dim(log_p, model.input_shape, n_bins=256),
                                   -log_p / (d * math.log(2)) + 8.0, rtol=1e-12)


def test_maf_hidden_widths_as_a_tuple_build_the_same_made_as_width_and_depth():
    """``MAF(dim, hidden=(64, 64))`` (issue 13's form) and ``hidden=64, depth=2`` (the CLI's) are one network;
    widths may differ per layer."""
    as_tuple, as_depth = MAF(3, hidden=(16, 16)), MAF(3, hidden=16, depth=2)
    shapes = {k: v.shape for k, v in as_tuple.state_dict().items()}
    assert shapes == {k: v.shape for k, v in as_depth.state_dict().items()}
    uneven = {k: v.shape for k, v in MAF(3, hidden=(16, 8)).state_dict().items() if k.endswith("weight")}
    assert sorted(uneven.values()) != sorted(s for k, s in shapes.items() if k.endswith("weight"))
    assert as_tuple.config["hidden"] == [16, 16] == as_depth.config["hidden"]
