"""The LU-parameterised weight of Glow's 1x1 convolution as Numba kernels: the CPU twin of
``kernels/reference/lu.py`` (Kingma & Dhariwal 2018, §3.2, eq. 10).

The equations (copied from the NumPy twin, the reference these kernels are tested against):

    weight:             W = P · L · Ũ,    L = I + strictly-lower(lower),  Ũ = strictly-upper(upper) + diag(s),
                                          s = sign(s) · exp(log|s|)
    weight_backward:    A = Pᵀ ∂L/∂W;   g_lower = strictly-lower(A Ũᵀ),  g_upper = strictly-upper(Lᵀ A),
                                        g_log_s = diag(Lᵀ A) · s

What the loops exploit, rather than forming L and Ũ as dense matrices: the triangles. M = L Ũ needs only
k ≤ min(i, j) in M[i, j] = Σ_k L[i, k] Ũ[k, j] (L[i, i] = 1 and Ũ[k, k] = s[k] written out), about C³/3
multiply-adds instead of C³; (A Ũᵀ)[i, j] for i > j needs only k ≥ j, and (Lᵀ A)[i, j] for i ≤ j only k ≥ i.
The products with P skip its zero entries: for a permutation matrix (what the layer holds) that makes them
O(C²) row copies, yet any P gives the twin's result. Sums run in float64; results are stored in the arrays'
dtype. The masked-away entries of ``lower`` and ``upper`` are never read, and their gradients are zero.

Arrays: ``perm``, ``lower``, ``upper``, ``gw`` of shape (C, C); ``sign_s``, ``log_s`` of shape (C,); one float
dtype (float32 or float64), any memory order (the wrappers copy to C order). ``NUMBA_DISABLE_JIT=1`` runs the
loops as plain Python.
"""
import math

import numpy as np
from numba import njit

from nflow.kernels.reference.lu import check

# error_model="numpy": no ZeroDivisionError test in the loops (see kernels/cpu/affine_coupling.py). These are
# O(C³) with C ≤ a few hundred, once per training step: no parallel build, no fast-math.
FLAGS = {"cache": True, "error_model": "numpy"}


@njit(**FLAGS)
def _scales(sign_s, log_s):
    s = np.empty(log_s.shape[0])
    for k in range(log_s.shape[0]):
        s[k] = sign_s[k] * math.exp(float(log_s[k]))
    return s


@njit(**FLAGS)
def _weight(perm, lower, upper, sign_s, log_s, w):
    c = log_s.shape[0]
    s = _scales(sign_s, log_s)
    m = np.empty((c, c))  # M = L Ũ, float64
    for i in range(c):
        for j in range(c):
            # k < min(i, j): L[i, k] = lower[i, k], Ũ[k, j] = upper[k, j]; then the one diagonal term
            total = 0.0
            for k in range(min(i, j)):
                total += float(lower[i, k]) * float(upper[k, j])
            if i <= j:  # k = i: L[i, i] = 1, Ũ[i, j] = upper[i, j] above the diagonal, s[i] on it
                total += s[i] if i == j else float(upper[i, j])
            else:       # k = j < i: L[i, j] = lower[i, j], Ũ[j, j] = s[j]
                total += float(lower[i, j]) * s[j]
            m[i, j] = total
    for i in range(c):  # W = P M, skipping P's zeros
        row = np.zeros(c)
        for k in range(c):
            pk = float(perm[i, k])
            if pk != 0.0:
                for j in range(c):
                    row[j] += pk * m[k, j]
        for j in range(c):
            w[i, j] = row[j]


@njit(**FLAGS)
def _weight_backward(perm, lower, upper, sign_s, log_s, gw, g_lower, g_upper, g_log_s):
    c = log_s.shape[0]
    s = _scales(sign_s, log_s)
    a = np.zeros((c, c))  # A = Pᵀ gW: A[k, :] = Σ_i P[i, k] gW[i, :], skipping P's zeros
    for i in range(c):
        for k in range(c):
            pik = float(perm[i, k])
            if pik != 0.0:
                for j in range(c):
                    a[k, j] += pik * gw[i, j]
    for i in range(c):
        for j in range(c):
            if i > j:    # (A Ũᵀ)[i, j] = Σ_k A[i, k] Ũ[j, k] = A[i, j] s[j] + Σ_{k > j} A[i, k] upper[j, k]
                total = a[i, j] * s[j]
                for k in range(j + 1, c):
                    total += a[i, k] * float(upper[j, k])
                g_lower[i, j], g_upper[i, j] = total, 0
            else:        # (Lᵀ A)[i, j] = Σ_k L[k, i] A[k, j] = A[i, j] + Σ_{k > i} lower[k, i] A[k, j]
                total = a[i, j]
                for k in range(i + 1, c):
                    total += float(lower[k, i]) * a[k, j]
                g_lower[i, j] = 0
                if i == j:
                    g_upper[i, j] = 0
                    g_log_s[i] = total * s[i]
                else:
                    g_upper[i, j] = total


# --------------------------------------------------------------------------------------------- wrappers
def _contiguous(*arrays):
    return [np.ascontiguousarray(a) for a in arrays]


def weight(perm, lower, upper, sign_s, log_s):
    """W = P · L · (U + diag(sign(s) · exp(log|s|)))."""
    check(perm, lower, upper, sign_s, log_s)
    args = _contiguous(perm, lower, upper, sign_s, log_s)
    c = log_s.shape[0]
    w = np.empty((c, c), dtype=log_s.dtype)
    _weight(*args, w)
    return w


def weight_backward(perm, lower, upper, sign_s, log_s, gw):
    """(∂L/∂lower, ∂L/∂upper, ∂L/∂log|s|) given gw = ∂L/∂W."""
    check(perm, lower, upper, sign_s, log_s, gw)
    perm, lower, upper, sign_s, log_s, gw = _contiguous(perm, lower, upper, sign_s, log_s, gw)
    c = log_s.shape[0]
    g_lower, g_upper = np.empty((c, c), dtype=log_s.dtype), np.empty((c, c), dtype=log_s.dtype)
    g_log_s = np.empty(c, dtype=log_s.dtype)
    _weight_backward(perm, lower, upper, sign_s, log_s, gw, g_lower, g_upper, g_log_s)
    return g_lower, g_upper, g_log_s
