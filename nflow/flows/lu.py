"""LU decomposition with partial pivoting, W = P L U, in plain NumPy (no SciPy dependency).

Doolittle's algorithm: at column k, swap up the row with the largest |entry| (stability), store the
multipliers below the pivot in L and eliminate. Cost O(C³); used once, at initialisation.
"""
import numpy as np


def lu_decompose(w):
    """Return (P, L, U) with P a permutation matrix, L unit lower triangular, U upper triangular, W = P L U."""
    w = np.asarray(w, dtype=np.float64)
    n = w.shape[0]
    u = w.copy()
    lower = np.eye(n)
    perm = np.arange(n)
    for k in range(n - 1):
        pivot = k + int(np.argmax(np.abs(u[k:, k])))
        if pivot != k:
            u[[k, pivot], :] = u[[pivot, k], :]
            lower[[k, pivot], :k] = lower[[pivot, k], :k]
            perm[[k, pivot]] = perm[[pivot, k]]
        if u[k, k] == 0:
            continue  # singular column: nothing to eliminate
        factors = u[k + 1:, k] / u[k, k]
        lower[k + 1:, k] = factors
        u[k + 1:, k:] -= np.outer(factors, u[k, k:])
    # Rows were permuted: (permuted W) = L U, i.e. W = Pᵀ... stated as W = P L U with P[perm[i], i] = 1.
    p = np.zeros((n, n))
    p[perm, np.arange(n)] = 1.0
    return p, lower, np.triu(u)
