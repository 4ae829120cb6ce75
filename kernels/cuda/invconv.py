"""Glow's 1x1 convolution on the GPU: the CUDA kernels of ``invconv.cu`` behind the signatures of the NumPy twin
``kernels/reference/invconv.py`` (equations there and at the top of the ``.cu`` file).

forward: one kernel, a thread per output element, W in shared memory. backward: the same kernel with Wᵀ for
∂L/∂x, and one block per entry of ∂L/∂W (a block reduction over the N·H·W pixels; no atomics, deterministic).
When W does not fit in the shared memory a block may use without opting in (``SHARED_WEIGHT_BYTES``: C > 110
in float32, C > 78 in float64), the map runs the twin instead (CuPy's ``matmul``, cuBLAS), which is the better
choice at such sizes anyway. CuPy is imported when a function here first runs, never at import.
"""
import numpy as np

from nflow.kernels.cuda import loader
from nflow.kernels.reference import invconv as twin
from nflow.kernels.reference.invconv import check

SOURCE = "invconv.cu"
SHARED_WEIGHT_BYTES = 48 * 1024  # dynamic shared memory every CUDA device grants a block by default


def _cupy():
    import cupy
    return cupy


def _map(cp, a, w, transpose):
    """W a (transpose = 0) or Wᵀ a (transpose = 1), per pixel, for a C-ordered (N, C, H, W) array a."""
    c = a.shape[1]
    shared = c * c * a.dtype.itemsize
    if shared > SHARED_WEIGHT_BYTES:
        return twin.forward(a, w.T if transpose else w)
    out = cp.empty_like(a)
    if a.size:
        pixels = a.shape[2] * a.shape[3]
        kern = loader.function(SOURCE, "invconv_map", a.dtype)
        kern((loader.blocks(a.size),), (loader.THREADS,),
             (a, cp.ascontiguousarray(w), out, np.int32(c), np.int64(pixels), np.int64(a.size), np.int32(transpose)),
             shared_mem=shared)
    return out


def forward(x, w):
    """y[n, :, h, w] = W x[n, :, h, w]."""
    check(x, w)
    cp = _cupy()
    return _map(cp, cp.ascontiguousarray(x), w, 0)


def backward(x, w, gy):
    """(∂L/∂x, ∂L/∂W) given gy = ∂L/∂y: gx = Wᵀ gy per pixel, gW = Σ over pixels and samples of gy xᵀ."""
    check(x, w, gy)
    cp = _cupy()
    xc, gyc = cp.ascontiguousarray(x), cp.ascontiguousarray(gy)
    gx = _map(cp, gyc, w, 1)
    n, c, h, wd = x.shape
    if c > loader.MAX_BLOCKS:
        raise ValueError(f"invconv kernel (cupy): one block per entry of the {c}x{c} weight gradient, so at most "
                         f"{loader.MAX_BLOCKS} channels, got {c}")
    gw = cp.zeros((c, c), dtype=x.dtype)
    if x.size:
        kern = loader.function(SOURCE, "invconv_weight_grad", x.dtype)
        kern((c, c), (loader.THREADS,), (xc, gyc, gw, np.int32(c), np.int64(h * wd), np.int64(n)))
    return gx, gw
