"""Adam's update on the GPU: the CUDA kernel of ``adam.cu`` behind the signature of the NumPy twin
``kernels/reference/adam.py``. CuPy is imported when the function first runs, never at import."""
import numpy as np

from nflow.kernels.cuda import loader
from nflow.kernels.reference.adam import check

SOURCE = "adam.cu"


def update(theta, grad, m, v, step_size, beta1, beta2, eps, bias2):
    """One Adam step on ``theta`` in place (and on its moments ``m``, ``v``)."""
    import cupy as cp
    check(theta, grad, m, v)
    dtype = theta.dtype
    real = dtype.type
    kern = loader.function(SOURCE, "adam_update", dtype)
    kern((loader.blocks(theta.size),), (loader.THREADS,),
         (theta, cp.ascontiguousarray(grad), m, v, real(step_size), real(beta1), real(1 - beta1), real(beta2),
          real(1 - beta2), real(eps), real(bias2), np.int64(theta.size)))
