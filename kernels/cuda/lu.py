"""The LU-parameterised weight of Glow's 1x1 convolution on the GPU: the CUDA kernels of ``lu.cu`` behind the
signatures of the NumPy twin ``kernels/reference/lu.py`` (equations there and at the top of the ``.cu`` file).

weight / weight_backward: one kernel each, launched as a single block (C is small and this runs once per step);
a C×C scratch array carries the intermediate product (M = L Ũ, or A = Pᵀ gW) between the kernel's two phases.
CuPy is imported when a function here first runs, never at import.
"""
import numpy as np

from nflow.kernels.cuda import loader

SOURCE = "lu.cu"


def _check(perm, lower, upper, sign_s, log_s, gw=None):
    """CuPy and the inputs as C-ordered arrays, after checking their types, shapes and dtypes against log_s."""
    import cupy as cp
    if not isinstance(log_s, cp.ndarray):
        raise TypeError(f"lu kernel (cupy): log_s must be a CuPy array, got {type(log_s).__name__}")
    dtype = log_s.dtype
    if dtype not in loader.CTYPES:
        raise TypeError(f"lu kernel: needs float32 or float64 arrays, got log_s of dtype {dtype}")
    if log_s.ndim != 1:
        raise ValueError(f"lu kernel: log_s must be a vector (C,), got shape {log_s.shape}")
    c = log_s.shape[0]
    named = [("perm", perm, (c, c)), ("lower", lower, (c, c)), ("upper", upper, (c, c)), ("sign_s", sign_s, (c,))]
    if gw is not None:
        named.append(("gw", gw, (c, c)))
    out = []
    for name, a, shape in named:
        if not isinstance(a, cp.ndarray):
            raise TypeError(f"lu kernel (cupy): {name} must be a CuPy array, got {type(a).__name__}")
        if a.shape != shape:
            raise ValueError(f"lu kernel: {name} must have shape {shape} for log_s of shape ({c},), got {a.shape}")
        if a.dtype != dtype:
            raise TypeError(f"lu kernel: {name} is {a.dtype} but log_s is {dtype}; all arrays must share one "
                            "float dtype")
        out.append(cp.ascontiguousarray(a))
    return cp, out + [cp.ascontiguousarray(log_s)]


def weight(perm, lower, upper, sign_s, log_s):
    """W = P · L · (U + diag(sign(s) · exp(log|s|)))."""
    cp, (p, lo, up, sg, ls) = _check(perm, lower, upper, sign_s, log_s)
    c = ls.shape[0]
    scratch, w = cp.empty((c, c), dtype=ls.dtype), cp.empty((c, c), dtype=ls.dtype)
    if c:
        kern = loader.function(SOURCE, "lu_weight", ls.dtype)
        kern((1,), (loader.THREADS,), (p, lo, up, sg, ls, scratch, w, np.int32(c)))
    return w


def weight_backward(perm, lower, upper, sign_s, log_s, gw):
    """(∂L/∂lower, ∂L/∂upper, ∂L/∂log|s|) given gw = ∂L/∂W."""
    cp, (p, lo, up, sg, g, ls) = _check(perm, lower, upper, sign_s, log_s, gw)
    c = ls.shape[0]
    scratch = cp.empty((c, c), dtype=ls.dtype)
    g_lower, g_upper = cp.empty((c, c), dtype=ls.dtype), cp.empty((c, c), dtype=ls.dtype)
    g_log_s = cp.empty((c,), dtype=ls.dtype)
    if c:
        kern = loader.function(SOURCE, "lu_weight_backward", ls.dtype)
        kern((1,), (loader.THREADS,), (p, lo, up, sg, ls, g, scratch, g_lower, g_upper, g_log_s, np.int32(c)))
    return g_lower, g_upper, g_log_s
