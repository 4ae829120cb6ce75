"""Adam's parameter update (Kingma & Ba 2015, Algorithm 1), in place, for one parameter array:

    m ← β₁ m + (1 - β₁) g
    v ← β₂ v + (1 - β₂) g²
    θ ← θ - (lr / (1 - β₁ᵗ)) · m / (√(v / (1 - β₂ᵗ)) + ε)

i.e. θ - lr · m̂ / (√v̂ + ε) with the bias corrections m̂ = m / (1 - β₁ᵗ), v̂ = v / (1 - β₂ᵗ), ε added to √v̂
(Algorithm 1, and PyTorch's Adam). ``step_size`` = lr / (1 - β₁ᵗ) and ``bias2`` = 1 - β₂ᵗ are computed once per
step by the optimizer; every scalar arrives in the arrays' dtype so nothing widens.

Arrays: θ, g, m, v of one shape and one float dtype; θ, m, v are overwritten. Cost: O(size), memory-bound.
This NumPy twin makes seven passes with temporaries; the kernels make one.
"""
from nflow.backend import get_array_module


def update(theta, grad, m, v, step_size, beta1, beta2, eps, bias2):
    """One Adam step on ``theta`` in place (and on its moments ``m``, ``v``)."""
    xp = get_array_module(theta)
    m *= beta1
    m += (1 - beta1) * grad
    v *= beta2
    v += (1 - beta2) * grad * grad
    theta -= step_size * m / (xp.sqrt(v / bias2) + eps)
