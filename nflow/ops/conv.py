"""2-D convolution, stride 1, 'same' zero padding, odd square kernels (Glow and RealNVP use 1x1 and 3x3).

Inputs and outputs are NCHW, as in the papers' code. Inside, the batch is folded into the GEMMs' long axis:
the input is unfolded into one matrix of columns ``cols`` of shape ``(C_in·k·k, N·H·W)`` (im2col, channel-major:
row ``(c, i, j)`` holds ``x_pad[n, c, h+i, w+j]`` for every pixel ``(n, h, w)``), so each product is a single
large GEMM:

    forward   y  = W @ cols               (C_out, C_in·k²) @ (C_in·k², N·H·W)
    backward  dW = gy @ colsᵀ             (C_out, N·H·W)   @ (N·H·W, C_in·k²)
              dx = col2im(Wᵀ @ gy)        (C_in·k², C_out) @ (C_out, N·H·W)

with ``gy`` the output gradient in the same channel-major layout ``(C_out, N·H·W)``. ``colsᵀ`` is a view
(BLAS reads it transposed), so no GEMM operand is ever copied. The price is one NCHW <-> channel-major
transpose of the (small) output and output gradient. A 1x1 convolution needs no unfolding, only that transpose.

Why one big GEMM rather than a GEMM per sample and ``tensordot`` (this module's first layout): at Glow's sizes
(N=64, C=256, 14x14, k=3) a GEMM per sample (196 columns each) runs ~10% below one GEMM over all 12,544
columns, ``tensordot`` for dW copies the whole unfolded input (k² times x) to make it contiguous, and unfolding
into ``(N, C·k², H·W)`` is slower than into ``(C·k², N·H·W)``. Forward + backward went from 2.3x to 1.3x the
GEMM roofline (``python -m benchmarks.conv2d_roofline``; figures in benchmarks/RESULTS.md).

When the output has fewer channels than the input (Glow's zero-initialised last conv: 256 -> 4 or 16), the
same FLOPs are laid out the other way round, unfolding the *output* side, whose buffer is k²·C_out rows
instead of k²·C_in (64 times smaller for 256 -> 4). With ``Wf`` the kernel flipped in both spatial axes, as a
``(C_out·k², C_in)`` matrix with rows ``(o, i, j)``, and ``x`` channel-major:

    forward   y  = col2im(Wf @ x)         col2im sums the k² shifted products: exactly the correlation
    backward  G  = im2col(gy)             (the adjoint of col2im)
              dx = Wf ᵀ @ G,   dWf = G @ xᵀ

(flipping is what turns col2im's "shift by p - i" into the correlation's "shift by i - p").
The rule, :func:`unfolds_output`: unfold the side with fewer channels. Proposed and measured in
``benchmarks/conv_small_side.py`` (2.3-2.7x on Glow's ZeroConv shapes).

Cost: 2·N·C_out·C_in·k²·H·W FLOPs forward, twice that backward (one GEMM for dx, one for dW), either layout.
Memory: backward keeps the input and the weight; the unfolded buffer (k² times the smaller side) is rebuilt in
backward rather than kept, trading one cheap unfold for that memory per layer.
"""
from nflow.kernels.reference.conv import batch_major, channel_major, col2im, im2col  # the NumPy twins, shared
from nflow.tensor import Function


def unfolds_output(c_in, c_out, k):
    """Whether :class:`Conv2d` unfolds the output side: when it has fewer channels (and there is a kernel to unfold)."""
    return k > 1 and c_out < c_in


def flipped_kernel_matrix(w):
    """(C_out, C_in, k, k) -> (C_out·k², C_in): row (o, i, j) is w[o, :, k-1-i, k-1-j]."""
    c_out, c_in, k, _ = w.shape
    return w[:, :, ::-1, ::-1].transpose(0, 2, 3, 1).reshape(c_out * k * k, c_in)


class Conv2d(Function):
    """y[n, o] = Σ_c Σ_ij w[o, c, i, j] · x_pad[n, c, h+i, w+j] (+ b[o]). Keeps: the input and the weight.

    Unfolds the input or the output, whichever has fewer channels (see the module docstring).
    """

    def validate(self, x, w, b=None):
        if x.ndim != 4:
            raise ValueError(f"conv2d: input must be (N, C, H, W), got shape {x.shape}")
        if w.ndim != 4 or w.shape[2] != w.shape[3] or w.shape[2] % 2 == 0:
            raise ValueError(f"conv2d: weight must be (C_out, C_in, k, k) with odd k, got shape {w.shape}")
        if w.shape[1] != x.shape[1]:
            raise ValueError(f"conv2d: weight {w.shape} expects {w.shape[1]} input channels, "
                             f"input {x.shape} has {x.shape[1]}")
        if b is not None and b.shape != (w.shape[0],):
            raise ValueError(f"conv2d: bias must have shape ({w.shape[0]},), got {b.shape}")
        if x.dtype != w.dtype or (b is not None and b.dtype != x.dtype):
            raise TypeError(f"conv2d: dtypes differ: input {x.dtype}, weight {w.dtype}"
                            + (f", bias {b.dtype}" if b is not None else ""))

    def forward(self, x, w, b=None):
        n, c, h, wd = x.shape
        c_out, _, k, _ = w.shape
        self.saved = (x, w)
        if unfolds_output(c, c_out, k):
            y = col2im(flipped_kernel_matrix(w) @ channel_major(x), (n, c_out, h, wd), k)  # (N, C_out, H, W)
            if b is not None:
                y += b[:, None, None]
            return y
        y = w.reshape(c_out, c * k * k) @ im2col(x, k)  # (C_out, N·H·W)
        if b is not None:
            y += b[:, None]
        return batch_major(y, (n, c_out, h, wd))

    def backward(self, gy):
        x, w = self.saved
        c_out, c, k, _ = w.shape
        need_x, need_w = self.needs_input_grad[0], self.needs_input_grad[1]
        gx = gw = gb = None
        if unfolds_output(c, c_out, k):
            g = im2col(gy, k)  # (C_out·k², N·H·W)
            if need_w:
                gwf = g @ channel_major(x).T  # (C_out·k², C_in), rows (o, i, j) of the flipped kernel
                gw = gwf.reshape(c_out, k, k, c).transpose(0, 3, 1, 2)[:, :, ::-1, ::-1].copy()
            if need_x:
                gx = batch_major(flipped_kernel_matrix(w).T @ g, x.shape)
        else:
            g = channel_major(gy)  # (C_out, N·H·W)
            if need_w:
                gw = (g @ im2col(x, k).T).reshape(w.shape)  # Σ over all N·H·W pixels in one GEMM
            if need_x:
                gx = col2im(w.reshape(c_out, c * k * k).T @ g, x.shape, k)
        if len(self.needs_input_grad) == 3 and self.needs_input_grad[2]:
            gb = gy.sum(axis=(0, 2, 3))
        return (gx, gw) if len(self.needs_input_grad) == 2 else (gx, gw, gb)


def conv2d(x, w, b=None):
    """Stride-1, 'same'-padded 2-D convolution of ``x`` (N, C_in, H, W) with ``w`` (C_out, C_in, k, k), k odd."""
    return Conv2d()(x, w) if b is None else Conv2d()(x, w, b)
