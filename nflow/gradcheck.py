"""Analytic gradients against central differences, in float64.

For a function ``f`` of tensors returning a tensor ``y``, reverse mode gives the vector-Jacobian product
``gᵀ J`` for a random cotangent ``g``. The check compares it with central differences of the scalar
``s(x) = Σ g · f(x)``:

    ∂s/∂x_i ≈ (s(x + ε e_i) - s(x - ε e_i)) / 2ε            (each element, for small inputs)
    ∇s · v  ≈ (s(x + ε v)   - s(x - ε v))   / 2ε            (random unit directions v, for large inputs)

The truncation error is O(ε²) and the rounding error O(u/ε) with u = 2⁻⁵³; ε = 2⁻²⁰ ≈ 1e-6 balances them to
about 1e-10 relative. In float32 (u = 2⁻²⁴) no ε gives a useful check, so float32 inputs are refused.

Kinks. A network with ReLUs is only piecewise smooth: where a unit switches between x - εv and x + εv, the
central difference averages two slopes and matches neither side's gradient. Every difference here is
:func:`nflow.finite_differences.central_difference` (shared with the property kit ``nflow.testing``), which also
evaluates x ± 2εv and detects such a kink; the step is then shrunk (a kink at distance d > 2ε no longer lies
between the points). If the point sits on a kink even at the smallest step, no derivative exists there and
:class:`NonDifferentiablePoint` is raised: the caller picks another point. The tolerances are not touched.
"""
import numpy as np

from nflow.backend import get_array_module, to_numpy
from nflow.finite_differences import FD_STEP, central_difference
from nflow.tensor import Tensor, no_grad

MAX_ELEMENTWISE = 512  # inputs up to this size are checked element by element
N_DIRECTIONS = 6       # larger ones along this many random directions
# Where a difference straddles a kink, the step is divided by STEP_SHRINK (2⁷) up to this many times (down to
# ε/2¹⁴ ≈ 6e-11, where rounding is still ~2e-6 relative), before the point is declared non-differentiable.
STEP_RETRIES = 2


def gradcheck(fn, inputs, eps=FD_STEP, atol=1e-7, rtol=1e-5, seed=0):
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
    with no_grad():   # s = Σ g·f sums terms of mixed sign: it rounds like Σ |g·f|, not like |s|
        value_scale = float(xp.abs(fn(*tensors).data * g).sum())

    def difference(along, what, t):
        """The checked central difference of s along ``along(step)`` (s at t + step·direction)."""
        return central_difference(lambda step: center if step == 0 else along(step), eps, what, value_scale,
                                  input_scale=float(xp.max(xp.abs(t.data))) if t.size else 0.0,
                                  retries=STEP_RETRIES)

    for i, t in enumerate(tensors):
        if not t.requires_grad:
            continue
        analytic = t.grad if t.grad is not None else xp.zeros_like(t.data)
        if t.size <= MAX_ELEMENTWISE:
            numeric = _elementwise(difference, scalar, i, t)
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

                numeric = float(difference(along_v, f"gradcheck: input {i}, direction {d}", t))
                _compare(f"input {i} (shape {t.shape}), direction {d}",
                         np.array(float((analytic * v_dev).sum())), np.array(numeric), atol, rtol)
    return True


def _elementwise(difference, scalar, i, t):
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

        out[j] = difference(along_j, f"gradcheck: input {i}, element {j}", t)
    return numeric


def _compare(what, analytic, numeric, atol, rtol):
    err = np.abs(analytic - numeric)
    bound = atol + rtol * np.abs(numeric)
    if not np.all(err <= bound) or not np.all(np.isfinite(analytic)):
        worst = np.unravel_index(np.argmax(err - bound), err.shape) if err.ndim else ()
        raise AssertionError(f"gradcheck: {what}: analytic and numeric gradients differ; worst at {worst}: "
                             f"analytic {analytic[worst]!r}, numeric {numeric[worst]!r}, "
                             f"|diff| {err[worst]:.3e} > atol {atol} + rtol {rtol}·|numeric|")
