"""The base class of graph nodes whose arrays are computed by a hand-written kernel family.

A kernel family (``kernels/dispatch.py``) has one module per backend — the NumPy twin, a Numba kernel, a CUDA
kernel — all with the same functions. A node picks the current backend's module when it is called, and its
backward runs *that* module again: a backend switch between forward and backward cannot mix implementations.
"""
from nflow.kernels.dispatch import kernel_module
from nflow.tensor import Function


class KernelFunction(Function):
    """A :class:`~nflow.tensor.Function` whose ``forward`` and ``backward`` call ``self.kernel``: the module of
    kernel family ``family`` for the backend current when the node was called."""

    family = None  # set by each subclass: a key of kernels/dispatch.py's table

    def __call__(self, *inputs):
        self.kernel = kernel_module(self.family)
        return super().__call__(*inputs)
