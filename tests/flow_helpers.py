"""Shared pieces of the flow property tests (issue 3): layer builders, parameter perturbation, and a
per-sample Jacobian built by central differences, independent of the code under test.

Nothing here computes an expected value with the flow code itself: the Jacobian is finite differences of the
forward map, priors are written out with NumPy, and tolerances are stated next to where they are used.
"""
import math

import numpy as np
from hypothesis import reject
from hypothesis.control import currently_in_test_context

import nflow
from nflow.backend import array_module_for_backend, cupy_available, numba_available, to_numpy
from nflow.flows import (MLP, ActNorm, AdditiveCoupling, AffineCoupling, BatchNormFlow, Centre, ConvNet, Flatten,
                         FlowSequence, GlowNet, InvConv1x1, LearnedStandardise, Logit, NiceScaling, Reverse,
                         Shuffle, Split, Squeeze)
from nflow.gradcheck import central_difference
from nflow.tensor import no_grad

# Layer-level properties run on every backend this machine has: the NumPy twins (the reference) and the
# hand-written kernels behind the same layers. Model-level tests run on the default (fastest) backend.
BACKENDS = ["numpy"] + (["numba"] if numba_available() else []) + (["cupy"] if cupy_available() else [])
EPS32 = float(np.finfo(np.float32).eps)
# float64: inverse(forward(x)) must give x back to 1e-10 relative to the input's scale (max |x|).
FLOAT64_RTOL = 1e-10
# float32: each layer rounds a few times each way (the net's output, x·s + t, a C×C matrix product, a logit);
# 16 ulp per layer, growing linearly with depth, bounds that with room for moderate conditioning.
FLOAT32_RTOL_PER_LAYER = 16 * EPS32
PERTURB_STD = 0.1  # every parameter gets 0.1·N(0, 1) added, so zero-initialised nets stop being trivial
FD_EPS = 1e-5      # central-difference step in float64: truncation ~ε² ≈ 1e-10, rounding ~u/ε ≈ 1e-11


def at_a_smooth_point(check):
    """Run a central-difference ``check`` (a function of no arguments). Where hypothesis drew a point on a kink of
    the small ReLU nets (:class:`nflow.NonDifferentiablePoint`: no derivative exists there), the example is
    rejected and hypothesis draws another; no tolerance is loosened. Outside hypothesis the error propagates:
    a fixed test point on a kink is a test to fix."""
    try:
        return check()
    except nflow.NonDifferentiablePoint:
        if currently_in_test_context():
            reject()
        raise


def gradcheck(*args, **kwargs):
    """:func:`nflow.gradcheck` at a smooth point (see :func:`at_a_smooth_point`)."""
    return at_a_smooth_point(lambda: nflow.gradcheck(*args, **kwargs))


def float32_rtol(depth):
    """The float32 round-trip tolerance for a chain of ``depth`` layers (relative to max |x|)."""
    return FLOAT32_RTOL_PER_LAYER * depth


def rel_err(a, b):
    """max |a - b| relative to the scale of b (max |b|, at least 1e-300)."""
    a, b = to_numpy(a).astype(np.float64), to_numpy(b).astype(np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def count_layers(flow):
    """Number of leaf flow layers (anything but a FlowSequence) inside ``flow`` (a layer, a sequence or a model)."""
    from nflow.flows.base import Flow
    return sum(1 for m in flow.modules() if isinstance(m, Flow) and not isinstance(m, FlowSequence))


def perturb(module, rng, std=PERTURB_STD):
    """Add std·N(0, 1) to every Parameter of ``module`` (in place, on its device and dtype); mark every ActNorm
    initialised so that a forward pass in training mode does not overwrite the random values."""
    for p in module.parameters():
        noise = array_module_for_backend().asarray(rng.standard_normal(p.shape) * std).astype(p.dtype)
        p.data = p.data + noise
    for m in module.modules():
        if isinstance(m, ActNorm):
            m.initialised = array_module_for_backend().ones((), dtype=np.int8)
        if isinstance(m, BatchNormFlow):
            xp = array_module_for_backend()
            m.running_mean = xp.asarray(rng.standard_normal(m.channels) * 0.5).astype(m.running_mean.dtype)
            m.running_var = xp.asarray(rng.uniform(0.5, 2.0, size=m.channels)).astype(m.running_var.dtype)
    return module


def as_tensor(x, requires_grad=False):
    return nflow.tensor(x, requires_grad=requires_grad, dtype=x.dtype)


def per_sample_jacobians(fn, x, eps=FD_EPS):
    """J[n] = ∂fn(x)[n] / ∂x[n] (flattened) for each sample n, by central differences in float64.

    ``fn`` maps a float64 NumPy array (N, ...) to a float64 NumPy array (N, M); samples must not interact
    (eval mode), so perturbing coordinate i of every sample at once gives column i of every J[n]. Each column
    is :func:`nflow.gradcheck.central_difference`, which steps around the nets' kinks; a point on one is rejected
    (:func:`at_a_smooth_point`). Returns an array (N, M, D).
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    flat = x.reshape(n, -1)
    center = fn(x)

    def column(i):
        def shifted(step):
            moved = flat.copy()
            moved[:, i] += step
            return fn(moved.reshape(x.shape))
        return central_difference(shifted, center, eps)

    return at_a_smooth_point(lambda: np.stack([column(i) for i in range(flat.shape[1])], axis=-1))


def layer_map(layer, direction="forward"):
    """x (NumPy float64) -> the layer's output flattened per sample, (N, M), with no graph recorded."""
    def fn(x):
        with no_grad():
            y, _ = getattr(layer, direction)(as_tensor(x))
        return to_numpy(y.data).reshape(x.shape[0], -1)
    return fn


# ------------------------------------------------------------------------------------------------ priors
LOG_2PI = math.log(2 * math.pi)


def gaussian_logpdf(z):
    """Σ log N(z; 0, 1) per sample, NumPy float64."""
    z = np.asarray(z, dtype=np.float64).reshape(len(z), -1)
    return -0.5 * (z * z + LOG_2PI).sum(axis=1)


def logistic_logpdf(z):
    """Σ log of the standard logistic density per sample: -(z + 2 log(1 + e^-z)), written stably."""
    z = np.asarray(z, dtype=np.float64).reshape(len(z), -1)
    return -(np.abs(z) + 2 * np.log1p(np.exp(-np.abs(z)))).sum(axis=1)


# ------------------------------------------------------------------------------------------------ layers
# Each builder takes (rng, c, h, w, dtype, parity) and returns (layer, per-sample input shape, input kind).
# Input kinds: "normal" (N(0,1)·scale), "unit" (uniform in (0.05, 0.95), for Logit).
HIDDEN = 4


def _vec(c):
    return max(c, 2)


def _additive_vec(rng, c, h, w, dtype, parity):
    d = _vec(c)
    return AdditiveCoupling(d, MLP(d // 2, d - d // 2, HIDDEN, 2, dtype=dtype), parity=parity), (d,), "normal"


def _additive_img(rng, c, h, w, dtype, parity):
    return (AdditiveCoupling(c, GlowNet(c // 2, c - c // 2, HIDDEN, dtype=dtype), parity=parity), (c, h, w),
            "normal")


def _affine_vec(form):
    def build(rng, c, h, w, dtype, parity):
        d = _vec(c)
        net = MLP(d // 2, 2 * (d - d // 2), HIDDEN, 2, dtype=dtype)
        return AffineCoupling(d, net, "channel", parity, form=form, dtype=dtype), (d,), "normal"
    return build


def _affine_img(form):
    def build(rng, c, h, w, dtype, parity):
        net = GlowNet(c // 2, 2 * (c - c // 2), HIDDEN, dtype=dtype)
        return AffineCoupling(c, net, "channel", parity, form=form, dtype=dtype), (c, h, w), "normal"
    return build


def _checkerboard(rng, c, h, w, dtype, parity):
    net = ConvNet(c, 2 * c, HIDDEN, dtype=dtype)
    return AffineCoupling(c, net, "checkerboard", parity, form="exp", dtype=dtype), (c, h, w), "normal"


def _invconv(lu):
    def build(rng, c, h, w, dtype, parity):
        return InvConv1x1(c, lu=lu, dtype=dtype, rng=rng), (c, h, w), "normal"
    return build


def _glow_step_sequence(rng, c, h, w, dtype, parity):
    c2 = 4 * c
    layers = [Squeeze(), ActNorm(c2, dtype=dtype), InvConv1x1(c2, lu=bool(parity), dtype=dtype, rng=rng),
              AffineCoupling(c2, GlowNet(c2 // 2, 2 * (c2 - c2 // 2), HIDDEN, dtype=dtype), dtype=dtype),
              Reverse(c2), Split(c2, dtype=dtype)]
    return FlowSequence(layers), (c, h, w), "normal"


LAYERS = {
    "AdditiveCoupling/vector": _additive_vec,
    "AdditiveCoupling/image": _additive_img,
    "AffineCoupling/channel/vector/sigmoid": _affine_vec("sigmoid"),
    "AffineCoupling/channel/vector/exp": _affine_vec("exp"),
    "AffineCoupling/channel/image/sigmoid": _affine_img("sigmoid"),
    "AffineCoupling/channel/image/exp": _affine_img("exp"),
    "AffineCoupling/checkerboard/exp": _checkerboard,
    "NiceScaling": lambda rng, c, h, w, dtype, parity: (NiceScaling(_vec(c), dtype=dtype), (_vec(c),), "normal"),
    "ActNorm/vector": lambda rng, c, h, w, dtype, parity: (ActNorm(c, dtype=dtype), (c,), "normal"),
    "ActNorm/image": lambda rng, c, h, w, dtype, parity: (ActNorm(c, dtype=dtype), (c, h, w), "normal"),
    "InvConv1x1/lu": _invconv(True),
    "InvConv1x1/plain": _invconv(False),
    "BatchNormFlow/vector/eval": lambda rng, c, h, w, dtype, parity: (BatchNormFlow(c, dtype=dtype).eval(), (c,),
                                                                      "normal"),
    "BatchNormFlow/image/eval": lambda rng, c, h, w, dtype, parity: (BatchNormFlow(c, dtype=dtype).eval(),
                                                                     (c, h, w), "normal"),
    "Squeeze": lambda rng, c, h, w, dtype, parity: (Squeeze(), (c, h, w), "normal"),
    "Reverse/vector": lambda rng, c, h, w, dtype, parity: (Reverse(c), (c,), "normal"),
    "Reverse/image": lambda rng, c, h, w, dtype, parity: (Reverse(c), (c, h, w), "normal"),
    "Shuffle": lambda rng, c, h, w, dtype, parity: (Shuffle(c, rng=rng), (c, h, w), "normal"),
    "Flatten": lambda rng, c, h, w, dtype, parity: (Flatten((c, h, w)), (c, h, w), "normal"),
    "Split": lambda rng, c, h, w, dtype, parity: (Split(2 * c, dtype=dtype), (2 * c, h, w), "normal"),
    "LearnedStandardise": lambda rng, c, h, w, dtype, parity: (LearnedStandardise((c, h, w), dtype=dtype),
                                                                 (c, h, w), "normal"),
    "Logit": lambda rng, c, h, w, dtype, parity: (Logit(), (c, h, w), "unit"),
    "Centre": lambda rng, c, h, w, dtype, parity: (Centre(), (c, h, w), "unit"),
    "FlowSequence/glow-step": _glow_step_sequence,
}
# Layers whose behaviour differs with the parity (which half conditions) or lu (InvConv in the sequence).
PARITY_LAYERS = {name for name in LAYERS if "Coupling" in name or name == "FlowSequence/glow-step"}
# (layer, parity) pairs the tests are parametrised over: both parities wherever the parity matters.
CASES = [(name, parity) for name in LAYERS for parity in ((0, 1) if name in PARITY_LAYERS else (0,))]


def build_layer(name, seed, c, h, w, dtype, parity=0):
    """A perturbed layer and a drawn input batch for it (NumPy arrays of ``dtype``)."""
    nflow.seed(seed)  # layers that draw their own initial weights (nets, Shuffle) draw them reproducibly
    rng = np.random.default_rng(seed)
    layer, shape, kind = LAYERS[name](rng, c, h, w, dtype, parity)
    perturb(layer, rng)
    return layer, shape, kind, rng


def draw_input(rng, n, shape, kind, dtype, scale=1.0):
    if kind == "unit":
        return rng.uniform(0.05, 0.95, size=(n,) + shape).astype(dtype)
    return (rng.standard_normal((n,) + shape) * scale).astype(dtype)
