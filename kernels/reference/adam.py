"""Adam's parameter update (Kingma & Ba 2015, Algorithm 1), in place, for one parameter array:

    m ← β₁ m + (1 - β₁) g
    v ← β₂ v + (1 - β₂) g²
    θ ← θ - (lr / (1 - β₁ᵗ)) · m / (√(v / (1 - β₂ᵗ)) + ε)

i.e. θ - lr · m̂ / (√v̂ + ε) with the bias corrections m̂ = m / (1 - β₁ᵗ), v̂ = v / (1 - β₂ᵗ), ε added to √v̂
(Algorithm 1, and PyTorch's Adam). ``step_size`` = lr / (1 - β₁ᵗ) and ``bias2`` = 1 - β₂ᵗ are computed once per
step by the optimizer; every scalar arrives in the arrays' dtype so nothing widens.

Arrays: θ, g, m, v of one shape and one float dtype; θ, m, v are overwritten, so C-ordered (:func:`check`, the
contract every implementation checks first). Cost: O(size), memory-bound.
This NumPy twin makes seven passes with temporaries; the kernels make one.
"""
from nflow.backend import get_array_module
from nflow.kernels.contract import require_c_order, require_float, require_like

FAMILY = "adam"


def check(theta, grad, m, v):
    """theta: float32/float64; grad, m, v: its shape and dtype; theta, m, v C-ordered (updated in place)."""
    require_float(FAMILY, "the parameter", theta)
    for name, a in (("grad", grad), ("m", m), ("v", v)):
        require_like(FAMILY, name, a, "the parameter", theta)
    for name, a in (("the parameter", theta), ("m", m), ("v", v)):
        require_c_order(FAMILY, name, a)


def update(theta, grad, m, v, step_size, beta1, beta2, eps, bias2):
    """One Adam step on ``theta`` in place (and on its moments ``m``, ``v``)."""
    check(theta, grad, m, v)
    xp = get_array_module(theta)
    m *= beta1
    m += (1 - beta1) * grad
    v *= beta2
    v += (1 - beta2) * grad * grad
    theta -= step_size * m / (xp.sqrt(v / bias2) + eps)
