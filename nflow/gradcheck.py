"""Analytic gradients against central differences, in float64.

For a function ``f`` of tensors returning a tensor ``y``, reverse mode gives the vector-Jacobian product
``gᵀ J`` for a random cotangent ``g``. The check compares it with central differences of the scalar
``s(x) = Σ g · f(x)``:

    ∂s/∂x_i ≈ (s(x + ε e_i) - s(x - ε e_i)) / 2ε            (each element, for small inputs)
    ∇s · v  ≈ (s(x + ε v)   - s(x - ε v))   / 2ε            (random unit directions v, for large inputs)

The truncation error is O(ε²) and the rounding error O(u/ε) with u = 2⁻⁵³; ε = 1e-6 balances them to about
1e-10 relative. In float32 (u = 2⁻²⁴) no ε gives a useful check, so float32 inputs are refused.
"""
import numpy as np

from nflow.backend import get_array_module, to_numpy
from nflow.tensor import Tensor, no_grad

MAX_ELEMENTWISE = 512  # inputs up to this size are checked element by element
N_DIRECTIONS = 6       # larger ones along this many random directions


def gradcheck(fn, inputs, eps=1e-6, atol=1e-7, rtol=1e-5, seed=0):
    """Check ``fn``'s reverse-mode gradient for every input that requires one; raise AssertionError if off.

    ``inputs``: float64 Tensors (those with ``requires_grad=True`` are checked) or float64 arrays (constants).
    Returns True when every check passes, so ``assert gradcheck(...)`` reads naturally.
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

    for i, t in enumerate(tensors):
        if not t.requires_grad:
            continue
        analytic = t.grad if t.grad is not None else xp.zeros_like(t.data)
        if t.size <= MAX_ELEMENTWISE:
            numeric = _elementwise(scalar, t, eps)
            _compare(f"input {i} (shape {t.shape})", to_numpy(analytic), numeric, atol, rtol)
        else:
            for d in range(N_DIRECTIONS):
                v = rng.standard_normal(t.shape)
                v /= np.linalg.norm(v)
                v_dev = xp.asarray(v)
                original = t.data.copy()
                t.data = original + eps * v_dev
                plus = scalar()
                t.data = original - eps * v_dev
                minus = scalar()
                t.data = original
                numeric = (plus - minus) / (2 * eps)
                _compare(f"input {i} (shape {t.shape}), direction {d}",
                         np.array(float((analytic * v_dev).sum())), np.array(numeric), atol, rtol)
    return True


def _elementwise(scalar, t, eps):
    numeric = np.zeros(t.shape)
    t.data = t.data.copy()  # C-contiguous, so reshape(-1) below is a view (ascontiguousarray would make 0-d 1-d)
    flat = t.data.reshape(-1)  # a view: writing it perturbs t.data in place
    out = numeric.reshape(-1)
    for j in range(flat.size):
        keep = float(flat[j])
        flat[j] = keep + eps
        plus = scalar()
        flat[j] = keep - eps
        minus = scalar()
        flat[j] = keep
        out[j] = (plus - minus) / (2 * eps)
    return numeric


def _compare(what, analytic, numeric, atol, rtol):
    err = np.abs(analytic - numeric)
    bound = atol + rtol * np.abs(numeric)
    if not np.all(err <= bound) or not np.all(np.isfinite(analytic)):
        worst = np.unravel_index(np.argmax(err - bound), err.shape) if err.ndim else ()
        raise AssertionError(f"gradcheck: {what}: analytic and numeric gradients differ; worst at {worst}: "
                             f"analytic {analytic[worst]!r}, numeric {numeric[worst]!r}, "
                             f"|diff| {err[worst]:.3e} > atol {atol} + rtol {rtol}·|numeric|")
