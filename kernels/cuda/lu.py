"""The LU-parameterised weight of Glow's 1x1 convolution on the GPU: the CUDA kernels of ``lu.cu`` behind the
signatures of the NumPy twin ``kernels/reference/lu.py`` (equations there and at the top of the ``.cu`` file).

weight / weight_backward: one kernel each, launched as a single block (C is small and this runs once per step);
a C×C scratch array carries the intermediate product (M = L Ũ, or A = Pᵀ gW) between the kernel's two phases.
CuPy is imported when a function here first runs, never at import.
"""
import numpy as np

from nflow.kernels.cuda import loader
from nflow.kernels.reference.lu import check

SOURCE = "lu.cu"


def _contiguous(*arrays):
    import cupy as cp
    return cp, [cp.ascontiguousarray(a) for a in arrays]


def weight(perm, lower, upper, sign_s, log_s):
    """W = P · L · (U + diag(sign(s) · exp(log|s|)))."""
    check(perm, lower, upper, sign_s, log_s)
    cp, (p, lo, up, sg, ls) = _contiguous(perm, lower, upper, sign_s, log_s)
    c = ls.shape[0]
    scratch, w = cp.empty((c, c), dtype=ls.dtype), cp.empty((c, c), dtype=ls.dtype)
    if c:
        kern = loader.function(SOURCE, "lu_weight", ls.dtype)
        kern((1,), (loader.THREADS,), (p, lo, up, sg, ls, scratch, w, np.int32(c)))
    return w


def weight_backward(perm, lower, upper, sign_s, log_s, gw):
    """(∂L/∂lower, ∂L/∂upper, ∂L/∂log|s|) given gw = ∂L/∂W."""
    check(perm, lower, upper, sign_s, log_s, gw)
    cp, (p, lo, up, sg, g, ls) = _contiguous(perm, lower, upper, sign_s, log_s, gw)
    c = ls.shape[0]
    scratch = cp.empty((c, c), dtype=ls.dtype)
    g_lower, g_upper = cp.empty((c, c), dtype=ls.dtype), cp.empty((c, c), dtype=ls.dtype)
    g_log_s = cp.empty((c,), dtype=ls.dtype)
    if c:
        kern = loader.function(SOURCE, "lu_weight_backward", ls.dtype)
        kern((1,), (loader.THREADS,), (p, lo, up, sg, ls, g, scratch, g_lower, g_upper, g_log_s, np.int32(c)))
    return g_lower, g_upper, g_log_s
