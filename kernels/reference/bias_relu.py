"""The epilogue of a convolution followed by a ReLU, in the channel-major layout: bias and ReLU in one pass.

    forward:   y[c, m] = max(z[c, m] + b[c], 0)        z: the convolution's GEMM output (C, M), M = N·H·W
    backward:  g[c, m] = gy[c, m] · [y[c, m] > 0]      ∂L/∂z (ReLU's derivative; [·] is 1 or 0)
               gb[c]   = Σ_m g[c, m]                     ∂L/∂b

Why fuse: as separate ops, the bias add, the ReLU, the ReLU's backward and the bias gradient are four passes
over a (hidden channels × N·H·W) array and two extra arrays the graph keeps (the pre-activation and the
mask); fused, the forward is one in-place pass over the GEMM's fresh output and the backward one pass that
writes g and sums gb. The pre-activation is never kept: [y > 0] = [z + b > 0], so the output is enough.

NaN is not swallowed: max(NaN, 0) is NaN here as in ``numpy.maximum``, so a diverging network shows up in the
loss instead of being clipped to 0.

Arrays: z, y, gy of shape (C, M), one float dtype; b of shape (C,). ``forward`` overwrites its input z (the
convolution owns that buffer) and returns it; ``backward`` writes g into ``out`` where given, gy itself when the
caller owns it (one stream fewer than a fresh g, which is read for ownership before it is written). Cost: O(C·M),
memory-bound. :func:`check_forward` and :func:`check_backward` are the contract every implementation checks
first.
"""
from nflow.backend import get_array_module
from nflow.kernels.contract import require_c_order, require_float

FAMILY = "bias-relu"


def _check_rows(name, a, channels, dtype):
    if a.ndim != 2 or a.shape[0] != channels:
        raise ValueError(f"{FAMILY} kernel: {name} must be (C, M) with C = {channels}, got shape {tuple(a.shape)}")
    if a.dtype != dtype:
        raise TypeError(f"{FAMILY} kernel: {name} is {a.dtype} but the bias is {dtype}; one float dtype for all")


def check_forward(z, b):
    """b: float32/float64 (C,); z: (C, M) of b's dtype, C-ordered (it is overwritten)."""
    require_float(FAMILY, "the bias", b)
    _check_rows("z", z, b.shape[0], b.dtype)
    require_c_order(FAMILY, "z", z)


def check_backward(y, gy, out=None):
    """y: float32/float64 (C, M); gy: y's shape and dtype; ``out``, where given: the same, C-ordered, and gy
    itself or apart from it."""
    require_float(FAMILY, "y", y)
    _check_rows("gy", gy, y.shape[0], y.dtype)
    if gy.shape != y.shape:
        raise ValueError(f"{FAMILY} kernel: gy {tuple(gy.shape)} and y {tuple(y.shape)} must match")
    if out is not None:
        _check_rows("out", out, y.shape[0], y.dtype)
        if out.shape != y.shape:
            raise ValueError(f"{FAMILY} kernel: out {tuple(out.shape)} and y {tuple(y.shape)} must match")
        require_c_order(FAMILY, "out", out)
        if out is not gy and get_array_module(out).may_share_memory(out, gy):
            raise ValueError(f"{FAMILY} kernel: out must be gy itself or memory apart from it, not an overlapping "
                             "view")


def forward(z, b):
    """y = max(z + b, 0), computed in place in z; returns z."""
    check_forward(z, b)
    xp = get_array_module(z)
    z += b[:, None]
    xp.maximum(z, 0, out=z)
    return z


def backward(y, gy, out=None):
    """(g, gb): g = gy · [y > 0], gb = Σ over the columns of g. g is written into ``out`` where given, which may
    be gy itself (each element is read before it is written): the op does so when it owns gy."""
    check_backward(y, gy, out)
    xp = get_array_module(y)
    g = xp.multiply(gy, y > 0, out=out)
    return g, g.sum(axis=1)
