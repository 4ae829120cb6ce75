"""Analytic gradients against central differences, in float64.

For a function ``f`` of tensors returning a tensor ``y``, reverse mode gives the vector-Jacobian product
``gᵀ J`` for a random cotangent ``g``. The check compares it with central differences of the scalar
``s(x) = Σ g · f(x)``:

    ∂s/∂x_i ≈ (s(x + ε e_i) - s(x - ε e_i)) / 2ε            (each element, for small inputs)
    ∇s · v  ≈ (s(x + ε v)   - s(x - ε v))   / 2ε            (random unit directions v, for large inputs)

The truncation error is O(ε²) and the rounding error O(u/ε) with u = 2⁻⁵³; ε = 1e-6 balances them to about
1e-10 relative. In float32 (u = 2⁻²⁴) no ε gives a useful check, so float32 inputs are refused.

Kinks. A network with ReLUs is only piecewise smooth: where a unit switches between x - εv and x + εv, the
central difference averages two slopes and matches neither side's gradient. :func:`central_difference` detects
that from the two one-sided differences, which for a smooth function agree to about ε·|f''| and across a kink
differ by the jump in slope; it then shrinks ε (a kink at distance d > ε no longer lies between the points). If
the point sits on a kink even at the smallest step, no derivative exists there and
:class:`NonDifferentiablePoint` is raised: the caller picks another point. The tolerances are not touched.
"""
import numpy as np

from nflow.backend import get_array_module, to_numpy
from nflow.tensor import Tensor, no_grad

MAX_ELEMENTWISE = 512  # inputs up to this size are checked element by element
N_DIRECTIONS = 6       # larger ones along this many random directions
# One-sided differences may differ by KINK_TOL·(1 + |derivative|) before the step is taken to straddle a kink:
# at ε = 1e-6 that admits curvatures |f''| up to 100·(1 + |f'|), far above what the layers' maps reach.
KINK_TOL = 1e-4
STEP_SHRINK = 100  # each retry divides ε by this ...
STEP_RETRIES = 2   # ... this many times (down to ε/10⁴, where rounding is still ~1e-6 relative)


class NonDifferentiablePoint(ValueError):
    """The function has a kink within the smallest difference step of the point: no derivative to check there."""


def central_difference(evaluate, center, eps):
    """(f(x + εv) - f(x - εv)) / 2ε, with ``evaluate(t)`` = f(x + t·v) (a float or an array) and ``center`` = f(x).

    Shrinks ε while the one-sided differences disagree (a kink between the points); raises
    :class:`NonDifferentiablePoint` when they still do at the smallest step.
    """
    center = np.asarray(center, dtype=np.float64)
    for retry in range(STEP_RETRIES + 1):
        step = eps / STEP_SHRINK ** retry
        plus, minus = np.asarray(evaluate(step), np.float64), np.asarray(evaluate(-step), np.float64)
        derivative = (plus - minus) / (2 * step)
        one_sided_gap = np.abs((plus - center) - (center - minus)) / step
        if np.all(one_sided_gap <= KINK_TOL * (1 + np.abs(derivative))):
            return derivative
    raise NonDifferentiablePoint(f"central differences: the one-sided slopes still differ by "
                                 f"{float(np.max(one_sided_gap)):.3g} at step {step:.1e}: the function has a kink "
                                 "(a ReLU switching, a clip) at this point; check at another point")


def gradcheck(fn, inputs, eps=1e-6, atol=1e-7, rtol=1e-5, seed=0):
    """Check ``fn``'s reverse-mode gradient for every input that requires one; raise AssertionError if off.

    ``inputs``: float64 Tensors (those with ``requires_grad=True`` are checked) or float64 arrays (constants).
    Returns True when every check passes, so ``assert gradcheck(...)`` reads naturally. Raises
    :class:`NonDifferentiablePoint` when ``fn`` has a kink at the given point (see the module docstring).
    """
    tensors = []
    for i, x in enumerate(inputs):
        t = x if isinstance(x, Tensor) else Tensor(x)
        if t.dtype != np.float64:
            raise TypeError(f"gradcheck: input {i} is {t.dtype}; central differences need float64 inputs")
        tensors.append(t)
    rng = np.random.default_rng(seed)

    for t in tensors:
        t.grad = None
    y = fn(*tensors)
    xp = get_array_module(y.data)
    g = xp.asarray(rng.standard_normal(y.shape))
    if not y.requires_grad:
        raise AssertionError("gradcheck: the output does not depend on any input that requires grad")
    y.backward(g)

    def scalar():
        with no_grad():
            return float((fn(*tensors).data * g).sum())

    center = scalar()

    for i, t in enumerate(tensors):
        if not t.requires_grad:
            continue
        analytic = t.grad if t.grad is not None else xp.zeros_like(t.data)
        if t.size <= MAX_ELEMENTWISE:
            numeric = _elementwise(scalar, center, t, eps)
            _compare(f"input {i} (shape {t.shape})", to_numpy(analytic), numeric, atol, rtol)
        else:
            for d in range(N_DIRECTIONS):
                v = rng.standard_normal(t.shape)
                v /= np.linalg.norm(v)
                v_dev = xp.asarray(v)
                original = t.data.copy()

                def along_v(step):
                    t.data = original + step * v_dev
                    value = scalar()
                    t.data = original
                    return value

                numeric = float(central_difference(along_v, center, eps))
                _compare(f"input {i} (shape {t.shape}), direction {d}",
                         np.array(float((analytic * v_dev).sum())), np.array(numeric), atol, rtol)
    return True


def _elementwise(scalar, center, t, eps):
    numeric = np.zeros(t.shape)
    t.data = t.data.copy()  # C-contiguous, so reshape(-1) below is a view (ascontiguousarray would make 0-d 1-d)
    flat = t.data.reshape(-1)  # a view: writing it perturbs t.data in place
    out = numeric.reshape(-1)
    for j in range(flat.size):
        keep = float(flat[j])

        def along_j(step):
            flat[j] = keep + step
            value = scalar()
            flat[j] = keep
            return value

        out[j] = central_difference(along_j, center, eps)
    return numeric


def _compare(what, analytic, numeric, atol, rtol):
    err = np.abs(analytic - numeric)
    bound = atol + rtol * np.abs(numeric)
    if not np.all(err <= bound) or not np.all(np.isfinite(analytic)):
        worst = np.unravel_index(np.argmax(err - bound), err.shape) if err.ndim else ()
        raise AssertionError(f"gradcheck: {what}: analytic and numeric gradients differ; worst at {worst}: "
                             f"analytic {analytic[worst]!r}, numeric {numeric[worst]!r}, "
                             f"|diff| {err[worst]:.3e} > atol {atol} + rtol {rtol}·|numeric|")
