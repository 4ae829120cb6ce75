"""Adam's parameter update as a Numba kernel: the CPU twin of ``kernels/reference/adam.py`` (equations there):

    m ← β₁ m + (1 - β₁) g,   v ← β₂ v + (1 - β₂) g²,   θ ← θ - step_size · m / (√(v / bias2) + ε)

What is fused: the twin makes seven passes over the parameter with four temporaries; here each element of θ,
g, m, v is read once and θ, m, v written once, in one loop (for NICE's 19 M parameters, 7 passes of 76 MB
become one). The arithmetic is the twin's, operation by operation, in the arrays' dtype (the scalars are cast
to it by the wrapper; no fast-math, so no fused multiply-adds the twin does not make either).
"""
import math

import numpy as np
from numba import njit, prange

from nflow.kernels.cpu import PARALLEL
from nflow.kernels.reference.adam import check


@njit(cache=True, parallel=PARALLEL, error_model="numpy")
def _update(theta, grad, m, v, step_size, beta1, one_minus_beta1, beta2, one_minus_beta2, eps, bias2):
    for i in prange(theta.size):
        g = grad[i]
        mi = m[i] * beta1 + one_minus_beta1 * g
        vi = v[i] * beta2 + one_minus_beta2 * g * g
        m[i] = mi
        v[i] = vi
        theta[i] -= step_size * mi / (math.sqrt(vi / bias2) + eps)


def update(theta, grad, m, v, step_size, beta1, beta2, eps, bias2):
    """One Adam step on ``theta`` in place (and on its moments ``m``, ``v``)."""
    check(theta, grad, m, v)
    dtype = theta.dtype
    real = dtype.type
    _update(theta.reshape(-1), np.ascontiguousarray(grad).reshape(-1), m.reshape(-1), v.reshape(-1),
            real(step_size), real(beta1), real(1 - beta1), real(beta2), real(1 - beta2), real(eps), real(bias2))
