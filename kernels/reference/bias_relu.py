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
convolution owns that buffer) and returns it. Cost: O(C·M), memory-bound.
"""
from nflow.backend import get_array_module


def forward(z, b):
    """y = max(z + b, 0), computed in place in z; returns z."""
    xp = get_array_module(z)
    z += b[:, None]
    xp.maximum(z, 0, out=z)
    return z


def backward(y, gy):
    """(g, gb): g = gy · [y > 0], gb = Σ over the columns of g."""
    g = gy * (y > 0)
    return g, g.sum(axis=1)
