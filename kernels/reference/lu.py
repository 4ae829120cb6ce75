"""The LU-parameterised weight of Glow's 1x1 convolution (Kingma & Dhariwal 2018, §3.2, eq. 10).

    W = P · L · (U + diag(s)),     s = sign(s) · exp(log|s|)

P is a fixed permutation matrix, L is unit lower triangular (its strictly-lower entries learned), U strictly
upper triangular (learned), sign(s) fixed (±1) and log|s| learned. Then log|det W| = Σ log|s| (det P = ±1,
det L = 1), which the layer computes itself: O(C) instead of the O(C³) of a determinant.

The parameters arrive as the layer holds them: ``lower`` and ``upper`` are full C×C matrices of which only the
strictly-lower (resp. strictly-upper) entries count; the rest is masked away, so its gradient is zero.

Backward. Write Ũ = U + diag(s) and A = Pᵀ ∂L/∂W. From dW = P (dL Ũ + L dŨ):

    ∂L/∂L = A Ũᵀ,    ∂L/∂Ũ = Lᵀ A

so  g_lower = strictly-lower part of A Ũᵀ,   g_upper = strictly-upper part of Lᵀ A,
    g_log_s = diag(Lᵀ A) · s            (∂Ũ_ii/∂log|s|_i = s_i).

Arrays: ``perm``, ``lower``, ``upper``, ``gw`` of shape (C, C); ``sign_s``, ``log_s`` of shape (C,); one float
dtype (:func:`check`, the contract every implementation checks first). Cost: two C×C products each way, O(C³);
nothing here depends on the batch.
"""
from nflow.backend import get_array_module
from nflow.kernels.contract import require_float, require_like, require_ndim

FAMILY = "lu"


def check(perm, lower, upper, sign_s, log_s, gw=None):
    """log_s: float32/float64 (C,); perm, lower, upper (and gw, where given): (C, C); sign_s: (C,); one dtype."""
    require_float(FAMILY, "log_s", log_s)
    require_ndim(FAMILY, "log_s", log_s, 1, "(C,)")
    c = log_s.shape[0]
    named = [("perm", perm, (c, c)), ("lower", lower, (c, c)), ("upper", upper, (c, c)), ("sign_s", sign_s, (c,))]
    if gw is not None:
        named.append(("gw", gw, (c, c)))
    for name, a, shape in named:
        require_like(FAMILY, name, a, "log_s", log_s, shape=shape)


def _factors(lower, upper, sign_s, log_s):
    """(L, Ũ, s): L = tril(lower, -1) + I,  Ũ = triu(upper, 1) + diag(s),  s = sign(s)·exp(log|s|)."""
    xp = get_array_module(lower)
    s = sign_s * xp.exp(log_s)
    lo = xp.tril(lower, -1) + xp.eye(lower.shape[0], dtype=lower.dtype)
    up = xp.triu(upper, 1) + xp.diag(s)
    return lo, up, s


def weight(perm, lower, upper, sign_s, log_s):
    """W = P · (L · Ũ)."""
    check(perm, lower, upper, sign_s, log_s)
    lo, up, _ = _factors(lower, upper, sign_s, log_s)
    return perm @ (lo @ up)


def weight_backward(perm, lower, upper, sign_s, log_s, gw):
    """(∂L/∂lower, ∂L/∂upper, ∂L/∂log|s|) given gw = ∂L/∂W (see the module docstring)."""
    check(perm, lower, upper, sign_s, log_s, gw)
    xp = get_array_module(lower)
    lo, up, s = _factors(lower, upper, sign_s, log_s)
    a = perm.T @ gw
    lt_a = lo.T @ a
    return xp.tril(a @ up.T, -1), xp.triu(lt_a, 1), xp.diagonal(lt_a) * s
