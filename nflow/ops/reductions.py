"""Reductions: sum, mean, logsumexp over an axis (int, tuple or None), with ``keepdims``; the per-sample sum."""
from nflow.backend import get_array_module
from nflow.tensor import Function


def _normalize_axis(axis, ndim, where):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"{where}: axis {a} is out of range for a tensor of {ndim} dimensions")
        out.append(a % ndim)
    return tuple(sorted(set(out)))


def _expand_reduced(g, shape, axes):
    """Give a reduced gradient back its reduced axes as size 1, so it broadcasts against ``shape``."""
    kept = tuple(1 if i in axes else n for i, n in enumerate(shape))
    return g.reshape(kept)


class Sum(Function):
    """y = Σ_axis x; dy/dx = 1. Keeps: the input's shape."""

    def __init__(self, axis, keepdims):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.in_shape = x.shape
        self.axes = _normalize_axis(self.axis, x.ndim, "sum")
        return x.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        xp = get_array_module(gy)
        return xp.broadcast_to(_expand_reduced(gy, self.in_shape, self.axes), self.in_shape).copy()


class Mean(Function):
    """y = Σ_axis x / n; dy/dx = 1/n. Keeps: the input's shape."""

    def __init__(self, axis, keepdims):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.in_shape = x.shape
        self.axes = _normalize_axis(self.axis, x.ndim, "mean")
        self.count = 1
        for a in self.axes:
            self.count *= x.shape[a]
        return x.mean(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        xp = get_array_module(gy)
        g = _expand_reduced(gy, self.in_shape, self.axes) / gy.dtype.type(self.count)
        return xp.broadcast_to(g, self.in_shape).copy()


class LogSumExp(Function):
    """y = log Σ_axis exp(x), computed as m + log Σ exp(x - m) with m the maximum (no overflow).

    dy/dx = softmax(x) along the axis. Keeps: the input and the output.
    """

    def __init__(self, axis, keepdims):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        xp = get_array_module(x)
        self.axes = _normalize_axis(self.axis, x.ndim, "logsumexp")
        m = x.max(axis=self.axes, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0)  # all -inf along the axis: leave -inf, do not make nan
        y = xp.log(xp.exp(x - m).sum(axis=self.axes, keepdims=True)) + m
        self.saved = (x, y)
        return y if self.keepdims else y.reshape(tuple(n for i, n in enumerate(x.shape) if i not in self.axes))

    def backward(self, gy):
        xp = get_array_module(gy)
        x, y = self.saved
        return _expand_reduced(gy, x.shape, self.axes) * xp.exp(x - y)


def sum(x, axis=None, keepdims=False):
    return Sum(axis, keepdims)(x)


def mean(x, axis=None, keepdims=False):
    return Mean(axis, keepdims)(x)


def logsumexp(x, axis=None, keepdims=False):
    return LogSumExp(axis, keepdims)(x)


def sum_per_sample(x):
    """Σ over every axis but the batch axis 0: (N, ...) -> (N,). Log-densities and log-dets are summed this way."""
    return sum(x, axis=tuple(range(1, x.ndim)))
