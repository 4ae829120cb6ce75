"""Shared pieces of the model and layer tests: parameter perturbation, float32 tolerances, the priors written out
in NumPy, and gradcheck at a smooth point.

The layer properties themselves (round trips, log-det against the Jacobian, gradients against central
differences, backends) are checked through the public kit ``nflow.testing`` in
``test_builtin_layers_through_kit.py``. Nothing here computes an expected value with the flow code itself.
"""
import math

import numpy as np
from hypothesis import reject
from hypothesis.control import currently_in_test_context

import nflow
from nflow.backend import array_module_for_backend, to_numpy
from nflow.flows import ActNorm, BatchNormFlow, FlowSequence

EPS32 = float(np.finfo(np.float32).eps)
# float64: inverse(forward(x)) must give x back to 1e-10 relative to the input's scale (max |x|).
FLOAT64_RTOL = 1e-10
# float32: each layer rounds a few times each way (the net's output, x·s + t, a C×C matrix product, a logit);
# 16 ulp per layer, growing linearly with depth, bounds that with room for moderate conditioning.
FLOAT32_RTOL_PER_LAYER = 16 * EPS32
PERTURB_STD = 0.1  # every parameter gets 0.1·N(0, 1) added, so zero-initialised nets stop being trivial


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
