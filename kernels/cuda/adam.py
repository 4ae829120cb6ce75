"""Adam's update on the GPU: the CUDA kernel of ``adam.cu`` behind the signature of the NumPy twin
``kernels/reference/adam.py``. CuPy is imported when the function first runs, never at import."""
import numpy as np

from nflow.kernels.cuda import loader

SOURCE = "adam.cu"


def update(theta, grad, m, v, step_size, beta1, beta2, eps, bias2):
    """One Adam step on ``theta`` in place (and on its moments ``m``, ``v``)."""
    import cupy as cp
    dtype = theta.dtype
    if dtype not in loader.CTYPES:
        raise TypeError(f"adam kernel: needs a float32 or float64 parameter, got {dtype}")
    for name, a in (("grad", grad), ("m", m), ("v", v)):
        if a.shape != theta.shape or a.dtype != dtype:
            raise ValueError(f"adam kernel: {name} is {a.dtype} {a.shape}, the parameter is {dtype} {theta.shape}")
    for name, a in (("parameter", theta), ("m", m), ("v", v)):
        if not a.flags.c_contiguous:
            raise ValueError(f"adam kernel: the {name} is updated in place and must be C-ordered")
    real = dtype.type
    kern = loader.function(SOURCE, "adam_update", dtype)
    kern((loader.blocks(theta.size),), (loader.THREADS,),
         (theta, cp.ascontiguousarray(grad), m, v, real(step_size), real(beta1), real(1 - beta1), real(beta2),
          real(1 - beta2), real(eps), real(bias2), np.int64(theta.size)))
