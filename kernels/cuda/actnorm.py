"""ActNorm on the GPU: the CUDA kernels of ``actnorm.cu`` behind the signatures of the NumPy twin
``kernels/reference/actnorm.py`` (equations there and at the top of the ``.cu`` file).

forward / inverse: one element-wise kernel; the log-det P·Σ log_s is one number, filled in by CuPy.
forward_backward / inverse_backward: one kernel writing the input gradient and both per-channel sums (block
reduction, then one ``atomicAdd`` per block and channel); the P·Σ_n glogdet term is added by CuPy.
CuPy is imported when a function here first runs, never at import.
"""
import numpy as np

from nflow.kernels.cuda import loader
from nflow.kernels.reference.actnorm import check

SOURCE = "actnorm.cu"


def _prepare(x, bias, log_s):
    import cupy as cp
    pixels = x.size // (x.shape[0] * x.shape[1]) if x.size else 0
    return cp, cp.ascontiguousarray(x), cp.ascontiguousarray(bias), cp.ascontiguousarray(log_s), pixels


def _logdet(cp, x, log_s, pixels, sign):
    return cp.full((x.shape[0],), sign * pixels * float(log_s.astype(cp.float64).sum()), dtype=x.dtype)


def _map(x, bias, log_s, sign):
    cp, xc, b, ls, pixels = _prepare(x, bias, log_s)
    out = cp.empty_like(xc)
    kern = loader.function(SOURCE, "actnorm_map", x.dtype)
    kern((loader.blocks(xc.size),), (loader.THREADS,),
         (xc, b, ls, out, np.int64(x.shape[1]), np.int64(pixels), np.int64(xc.size), np.int32(sign)))
    return out, _logdet(cp, x, log_s, pixels, sign)


def forward(x, bias, log_s):
    check(bias, log_s, x=x)
    return _map(x, bias, log_s, 1)


def inverse(y, bias, log_s):
    check(bias, log_s, y=y)
    return _map(y, bias, log_s, -1)


def _backward(x, bias, log_s, g_out, glogdet, inverse):
    cp, xc, b, ls, pixels = _prepare(x, bias, log_s)
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
    check(bias, log_s, glogdet, x=x, gy=gy)
    return _backward(x, bias, log_s, gy, glogdet, False)


def inverse_backward(y, bias, log_s, gx, glogdet):
    check(bias, log_s, glogdet, y=y, gx=gx)
    return _backward(y, bias, log_s, gx, glogdet, True)
