"""Tensor's Python operators, bound to the class once, when :mod:`nflow.ops` is imported.

``a + b`` on Tensors must build an :class:`~nflow.ops.arithmetic.Add` node, but ``nflow/tensor.py`` cannot
import the ops (every op imports it). So the methods are attached here, after the ops exist: one class
attribute per operator, looked up like any method, with no import on each call.
"""
from nflow.ops.arithmetic import add, div, mul, neg, pow, sub
from nflow.ops.linalg import matmul
from nflow.ops.reductions import mean, sum
from nflow.ops.shape import getitem, reshape, transpose
from nflow.tensor import Tensor


def _reflected(op):
    """``other ∘ self`` for the reflected operator (``2 - t`` calls ``t.__rsub__(2)``)."""
    def method(self, other):
        return op(other, self)
    method.__name__ = f"reflected_{op.__name__}"
    return method


def _reshape(self, *shape):
    """``t.reshape(2, 3)`` or ``t.reshape((2, 3))``."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return reshape(self, shape)


def _transpose(self, *axes):
    """``t.transpose()`` reverses the axes; ``t.transpose(1, 0, 2)`` or ``t.transpose((1, 0, 2))`` permutes them."""
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    return transpose(self, axes or None)


def _sum(self, axis=None, keepdims=False):
    return sum(self, axis=axis, keepdims=keepdims)


def _mean(self, axis=None, keepdims=False):
    return mean(self, axis=axis, keepdims=keepdims)


OPERATORS = {
    "__add__": add, "__radd__": _reflected(add),
    "__sub__": sub, "__rsub__": _reflected(sub),
    "__mul__": mul, "__rmul__": _reflected(mul),
    "__truediv__": div, "__rtruediv__": _reflected(div),
    "__pow__": pow, "__rpow__": _reflected(pow),
    "__matmul__": matmul, "__rmatmul__": _reflected(matmul),
    "__neg__": neg,
    "__getitem__": getitem,
    "reshape": _reshape, "transpose": _transpose, "sum": _sum, "mean": _mean,
}

for _name, _method in OPERATORS.items():
    setattr(Tensor, _name, _method)
Tensor.T = property(lambda self: transpose(self), doc="The tensor with its axes reversed.")
