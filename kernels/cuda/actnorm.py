"""ActNorm on the GPU: the CUDA kernels of ``actnorm.cu`` behind the signatures of the NumPy twin
``kernels/reference/actnorm.py`` (equations there and at the top of the ``.cu`` file).

forward / inverse: one element-wise kernel; the log-det P·Σ log_s is one number, filled in by CuPy.
forward_backward / inverse_backward: one kernel writing the input gradient and both per-channel sums (block
reduction, then one ``atomicAdd`` per block and channel); the P·Σ_n glogdet term is added by CuPy.
CuPy is imported when a function here first runs, never at import.
"""
import numpy as np

from nflow.kernels.cuda import loader

SOURCE = "actnorm.cu"


def _prepare(x, bias, log_s, name):
    import cupy as cp
    if x.dtype not in loader.CTYPES:
        raise TypeError(f"actnorm kernel: needs float32 or float64 arrays, got {name} of dtype {x.dtype}")
    if x.ndim < 2:
        raise ValueError(f"actnorm kernel: {name} must be (N, C, ...), got shape {x.shape}")
    for what, v in (("bias", bias), ("log_s", log_s)):
        if v.shape != (x.shape[1],) or v.dtype != x.dtype:
            raise ValueError(f"actnorm kernel: {what} must be {x.dtype} of shape ({x.shape[1]},), "
                             f"got {v.dtype} {v.shape}")
    pixels = x.size // (x.shape[0] * x.shape[1]) if x.size else 0
    return cp, cp.ascontiguousarray(x), cp.ascontiguousarray(bias), cp.ascontiguousarray(log_s), pixels


def _logdet(cp, x, log_s, pixels, sign):
    return cp.full((x.shape[0],), sign * pixels * float(log_s.astype(cp.float64).sum()), dtype=x.dtype)


def _map(x, bias, log_s, sign, name):
    cp, xc, b, ls, pixels = _prepare(x, bias, log_s, name)
    out = cp.empty_like(xc)
    kern = loader.function(SOURCE, "actnorm_map", x.dtype)
    kern((loader.blocks(xc.size),), (loader.THREADS,),
         (xc, b, ls, out, np.int64(x.shape[1]), np.int64(pixels), np.int64(xc.size), np.int32(sign)))
    return out, _logdet(cp, x, log_s, pixels, sign)


def forward(x, bias, log_s):
    return _map(x, bias, log_s, 1, "x")


def inverse(y, bias, log_s):
    return _map(y, bias, log_s, -1, "y")


def _backward(x, bias, log_s, g_out, glogdet, inverse, name):
    cp, xc, b, ls, pixels = _prepare(x, bias, log_s, name)
    if g_out.shape != x.shape or g_out.dtype != x.dtype:
        raise ValueError(f"actnorm kernel: the incoming gradient must be {x.dtype} {x.shape}, "
                         f"got {g_out.dtype} {g_out.shape}")
    if glogdet.shape != (x.shape[0],) or glogdet.dtype != x.dtype:
        raise ValueError(f"actnorm kernel: glogdet must be {x.dtype} of shape ({x.shape[0]},), "
                         f"got {glogdet.dtype} {glogdet.shape}")
    g = cp.ascontiguousarray(g_out)
    g_in = cp.empty_like(xc)
    gbias = cp.zeros_like(b)
    glog_s = cp.zeros_like(ls)
    n, c = x.shape[0], x.shape[1]
    kern = loader.function(SOURCE, "actnorm_backward", x.dtype)
    grid = (min(loader.blocks(n * pixels), 1024), c)
    kern(grid, (loader.THREADS,), (xc, b, ls, g, g_in, gbias, glog_s, np.int64(n), np.int64(c), np.int64(pixels),
                                   np.int32(1 if inverse else 0)))
    glog_s += (-1 if inverse else 1) * pixels * glogdet.sum()
    return g_in, gbias, glog_s


def forward_backward(x, bias, log_s, gy, glogdet):
    return _backward(x, bias, log_s, gy, glogdet, False, "x")


def inverse_backward(y, bias, log_s, gx, glogdet):
    return _backward(y, bias, log_s, gx, glogdet, True, "y")
