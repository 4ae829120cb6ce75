"""Affine coupling on the GPU: the CUDA kernels of ``affine_coupling.cu`` behind the signatures of the NumPy twin
``kernels/reference/affine_coupling.py`` (equations there and at the top of the ``.cu`` file).

forward / inverse: one kernel each, writing the output and the per-sample log-det in the same pass; the log-det
is reduced per block (warp shuffles + shared memory) and summed across blocks with one ``atomicAdd`` per block.
forward_backward: one kernel writing dx and dh (dt = gy is returned as is, as the twin does); inverse_backward:
one kernel writing dy, dh and dt. CuPy is imported when a function here first runs, never at import.
"""
import numpy as np

from nflow.kernels.cuda import loader
from nflow.kernels.reference.affine_coupling import check

SOURCE = "affine_coupling.cu"
FORM_CODES = {"sigmoid": 0, "exp": 1}  # FORM_EXP in the .cu file


def _cupy():
    import cupy
    return cupy


def _contiguous(*arrays):
    cp = _cupy()
    return cp, [cp.ascontiguousarray(a) for a in arrays]


def _map(a, h, t, form, sign):
    cp, (a, h, t) = _contiguous(a, h, t)
    n = a.shape[0]
    if n > loader.MAX_BLOCKS:
        raise ValueError(f"affine coupling kernel (cupy): one grid row per sample, so at most {loader.MAX_BLOCKS} "
                         f"samples per call, got {n}")
    m = a.size // n
    out = cp.empty_like(a)
    logdet = cp.zeros((n,), dtype=a.dtype)
    kern = loader.function(SOURCE, "affine_coupling_map", a.dtype)
    grid = (min(loader.blocks(m), 1024), n)
    kern(grid, (loader.THREADS,), (a, h, t, out, logdet, np.int64(m), np.int32(FORM_CODES[form]), np.int32(sign)))
    return out, logdet


def forward(x, h, t, form):
    """y = x · s + t, logdet = Σ log s."""
    check(form, x=x, h=h, t=t)
    return _map(x, h, t, form, 1)


def inverse(y, h, t, form):
    """x = (y - t) / s, logdet = -Σ log s."""
    check(form, y=y, h=h, t=t)
    return _map(y, h, t, form, -1)


def forward_backward(x, h, gy, glogdet, form):
    """(∂L/∂x, ∂L/∂h, ∂L/∂t) of the forward map."""
    check(form, glogdet, x=x, h=h, gy=gy)
    cp, (xc, hc, gyc, gl) = _contiguous(x, h, gy, glogdet)
    gx, gh = cp.empty_like(xc), cp.empty_like(xc)
    kern = loader.function(SOURCE, "affine_coupling_forward_backward", x.dtype)
    kern((loader.blocks(xc.size),), (loader.THREADS,),
         (xc, hc, gyc, gl, gx, gh, np.int64(xc.size // xc.shape[0]), np.int64(xc.size), np.int32(FORM_CODES[form])))
    return gx, gh, gy


def inverse_backward(y, h, t, gx, glogdet, form):
    """(∂L/∂y, ∂L/∂h, ∂L/∂t) of the inverse map."""
    check(form, glogdet, y=y, h=h, t=t, gx=gx)
    cp, (yc, hc, tc, gxc, gl) = _contiguous(y, h, t, gx, glogdet)
    gy, gh, gt = cp.empty_like(yc), cp.empty_like(yc), cp.empty_like(yc)
    kern = loader.function(SOURCE, "affine_coupling_inverse_backward", y.dtype)
    kern((loader.blocks(yc.size),), (loader.THREADS,),
         (yc, hc, tc, gxc, gl, gy, gh, gt, np.int64(yc.size // yc.shape[0]), np.int64(yc.size),
          np.int32(FORM_CODES[form])))
    return gy, gh, gt
