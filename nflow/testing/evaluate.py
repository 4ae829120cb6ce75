"""Running a layer on host arrays, on a chosen backend: its outputs without a graph, and the gradients of the
stored (ordinary) backward path. Everything returned is a NumPy array on the host."""
import numpy as np

import nflow
from nflow.backend import array_module_for_backend, to_numpy
from nflow.flows.base import seed_backward
from nflow.tensor import Tensor, enable_grad, no_grad


def on_device(array, backend, dtype):
    """``array`` as ``dtype`` where ``backend`` keeps its arrays."""
    return array_module_for_backend(backend).asarray(np.asarray(array, dtype=dtype))


def call(layer, direction, x, backend):
    """``layer.forward(x)`` or ``layer.inverse(x)`` without a graph: (y, logdet) as returned (not converted)."""
    with nflow.backend(backend), no_grad():
        return getattr(layer, direction)(Tensor(on_device(x, backend, x.dtype)))


def outputs(layer, direction, x, backend):
    """(y, logdet) of ``direction`` at ``x`` as host arrays, without a graph."""
    y, logdet = call(layer, direction, x, backend)
    return to_numpy(y.data), to_numpy(logdet.data)


def flat_outputs(layer, direction, backend):
    """x (float64 batch) -> [y flattened per sample, logdet] as a float64 array (N, M + 1)."""
    def fn(x):
        y, logdet = outputs(layer, direction, x, backend)
        n = y.shape[0]
        return np.concatenate([y.reshape(n, -1), logdet.reshape(n, 1)], axis=1).astype(np.float64)
    return fn


def stored_gradients(layer, direction, x, gy, glogdet, backend, params):
    """Gradients of L = Σ gy·y + Σ glogdet·logdet (y, logdet = ``direction`` at ``x``) by the stored path.

    Returns (∂L/∂x, [∂L/∂p for p in params]) as host arrays (zeros where no gradient arrived).
    """
    for p in params:
        p.grad = None
    with nflow.backend(backend), enable_grad():
        leaf = Tensor(on_device(x, backend, x.dtype), requires_grad=True)
        y, logdet = getattr(layer, direction)(leaf)
        seed_backward([(y, on_device(gy, backend, y.dtype)), (logdet, on_device(glogdet, backend, logdet.dtype))])
    gx = to_numpy(leaf.grad) if leaf.grad is not None else np.zeros_like(x)
    return gx, [to_numpy(p.grad) if p.grad is not None else np.zeros(p.shape, p.dtype) for p in params]


def reversible_gradients(layer, y, gy, glogdet, backend, params):
    """The same gradients by memory-free backprop, ``layer.backward_from_output`` given only the output.

    Returns (rebuilt x, ∂L/∂x, [∂L/∂p for p in params]) as host arrays.
    """
    for p in params:
        p.grad = None
    with nflow.backend(backend):
        x, gx = layer.backward_from_output(on_device(y, backend, y.dtype), on_device(gy, backend, y.dtype),
                                           on_device(glogdet, backend, y.dtype))
    x = to_numpy(x)
    return (x, to_numpy(gx) if gx is not None else np.zeros_like(x),
            [to_numpy(p.grad) if p.grad is not None else np.zeros(p.shape, p.dtype) for p in params])
