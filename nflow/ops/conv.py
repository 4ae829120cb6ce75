"""2-D convolution, stride 1, 'same' zero padding, odd square kernels (Glow and RealNVP use 1x1 and 3x3).

Two layouts for inputs and outputs: ``"NCHW"`` (the papers' code, the default) and ``"CNHW"`` (channel-major,
the layout every product below works in). Inside, the batch is folded into the GEMMs' long axis: the input
``x`` (C_in, N, H, W) is unfolded into one matrix of columns ``cols`` of shape ``(C_in·k·k, N·H·W)`` (im2col:
row ``(c, i, j)`` holds ``x_pad[c, n, h+i, w+j]`` for every pixel ``(n, h, w)``), so each product is a single
large GEMM:

    forward   y  = W @ cols               (C_out, C_in·k²) @ (C_in·k², N·H·W)
    backward  dW = gy @ colsᵀ             (C_out, N·H·W)   @ (N·H·W, C_in·k²)
              dx = col2im(Wᵀ @ gy)        (C_in·k², C_out) @ (C_out, N·H·W)

with ``gy`` the output gradient as a ``(C_out, N·H·W)`` matrix. ``colsᵀ`` is a view (BLAS reads it transposed),
so no GEMM operand is ever copied. A 1x1 convolution needs no unfolding: in CNHW, x *is* the (C_in, N·H·W)
matrix, and forward and backward are the three GEMMs alone.

Why the CNHW layout exists: an NCHW tensor has to be transposed to that matrix shape and the result transposed
back, one copy of each input, output and gradient of every convolution. A network that keeps its hidden
activations in CNHW (``nflow/flows/nets.py``: Glow's conv3x3 - ReLU - conv1x1 - ReLU - ZeroConv3x3 with 256 or
512 hidden channels) pays those copies only at its two ends, on the few channels of the coupling's halves. At
Glow's sizes (N=64, 256 channels, 14x14, float32) each such copy is 12.8 MB, a sizeable fraction of the 1x1
conv's GEMM (``python -m benchmarks.conv2d_roofline``; the figures are in benchmarks/RESULTS.md).

When the output has fewer channels than the input (Glow's zero-initialised last conv: 256 -> 4 or 16), the
same FLOPs are laid out the other way round, unfolding the *output* side, whose buffer is k²·C_out rows
instead of k²·C_in (64 times smaller for 256 -> 4). With ``Wf`` the kernel flipped in both spatial axes, as a
``(C_out·k², C_in)`` matrix with rows ``(o, i, j)``, and ``x`` as the (C_in, N·H·W) matrix:

    forward   y  = col2im(Wf @ x)         col2im sums the k² shifted products: exactly the correlation
    backward  G  = im2col(gy)             (the adjoint of col2im)
              dx = Wf ᵀ @ G,   dWf = G @ xᵀ

(flipping is what turns col2im's "shift by p - i" into the correlation's "shift by i - p").
The rule, :func:`unfolds_output`: unfold the side with fewer channels (``benchmarks/conv_small_side.py``
measures both sides). With equal channel counts (RealNVP's hidden 3x3 convs) it depends on what follows:
forward + backward unfold once each on the output side (col2im of Z forward, im2col of gy backward, and dx is
a plain GEMM) against twice im2col and once col2im on the input side, so a training step unfolds the output
side; a forward alone (log_prob, sampling) is cheaper on the input side, where the GEMM's inner dimension is
C·k² instead of C. The measured figures are in benchmarks/RESULTS.md ("Kernels (issue 4)").

``activation="relu"`` fuses the ReLU that follows the hidden convolutions of the coupling networks into the
op: the bias add and the ReLU are one in-place pass over the GEMM's output, and backward starts with one pass
that applies the ReLU's mask and sums the bias gradient (kernel family ``bias_relu``). The pre-activation is
never kept, and there is no separate ReLU node in the graph.

im2col/col2im are the NumPy functions of ``kernels/reference/conv.py`` on every backend (NumPy's strided block
copies beat hand-written loops here; ``kernels/dispatch.py`` says so where it decides).

Cost: 2·N·C_out·C_in·k²·H·W FLOPs forward, twice that backward (one GEMM for dx, one for dW), either layout.
Memory: backward keeps the input and the weight; the unfolded buffer (k² times the smaller side) is rebuilt in
backward rather than kept, trading one cheap unfold for that memory per layer.
"""
from nflow.backend import get_array_module
from nflow.kernels.dispatch import kernel_module
from nflow.kernels.reference.conv import batch_major
from nflow.tensor import Function

LAYOUTS = ("NCHW", "CNHW")
ACTIVATIONS = (None, "relu")
CHANNEL_AXIS = {"NCHW": 1, "CNHW": 0}


def unfolds_output(c_in, c_out, k, backward_follows=False):
    """Whether :class:`Conv2d` unfolds the output side: when it has fewer channels, or as many and a backward pass
    will follow (and there is a kernel to unfold)."""
    return k > 1 and (c_out < c_in or (c_out == c_in and backward_follows))


def flipped_kernel_matrix(w):
    """(C_out, C_in, k, k) -> (C_out·k², C_in): row (o, i, j) is w[o, :, k-1-i, k-1-j]."""
    c_out, c_in, k, _ = w.shape
    return w[:, :, ::-1, ::-1].transpose(0, 2, 3, 1).reshape(c_out * k * k, c_in)


def _matrix(a):
    """A (C, N, H, W) array, any strides, as the C-ordered (C, N·H·W) matrix (copies only a strided view)."""
    c = a.shape[0]
    return get_array_module(a).ascontiguousarray(a).reshape(c, -1)


class Conv2d(Function):
    """y[n, o] = Σ_c Σ_ij w[o, c, i, j] · x_pad[n, c, h+i, w+j] (+ b[o]), in ``layout`` "NCHW" or "CNHW",
    followed by max(·, 0) with ``activation="relu"``. Keeps: the input and the weight (and, with the ReLU, the
    output, channel-major, for its mask).

    Unfolds the input or the output, whichever has fewer channels (see the module docstring).
    """

    def __init__(self, layout="NCHW", activation=None):
        if layout not in LAYOUTS:
            raise ValueError(f"conv2d: layout must be one of {LAYOUTS}, got {layout!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"conv2d: activation must be one of {ACTIVATIONS}, got {activation!r}")
        self.layout, self.activation = layout, activation

    def validate(self, x, w, b=None):
        if x.ndim != 4:
            raise ValueError(f"conv2d: input must be ({', '.join(self.layout)}), got shape {x.shape}")
        if w.ndim != 4 or w.shape[2] != w.shape[3] or w.shape[2] % 2 == 0:
            raise ValueError(f"conv2d: weight must be (C_out, C_in, k, k) with odd k, got shape {w.shape}")
        channels = x.shape[CHANNEL_AXIS[self.layout]]
        if w.shape[1] != channels:
            raise ValueError(f"conv2d: weight {w.shape} expects {w.shape[1]} input channels, "
                             f"input {x.shape} ({self.layout}) has {channels}")
        if b is not None and b.shape != (w.shape[0],):
            raise ValueError(f"conv2d: bias must have shape ({w.shape[0]},), got {b.shape}")
        if x.dtype != w.dtype or (b is not None and b.dtype != x.dtype):
            raise TypeError(f"conv2d: dtypes differ: input {x.dtype}, weight {w.dtype}"
                            + (f", bias {b.dtype}" if b is not None else ""))

    def _channel_major_view(self, a):
        return a if self.layout == "CNHW" else a.transpose(1, 0, 2, 3)  # a view: nothing copied yet

    def _out(self, a):
        return a if self.layout == "CNHW" else batch_major(a)

    def forward(self, x, w, b=None):
        xc = self._channel_major_view(x)  # (C_in, N, H, W)
        c, n, h, wd = xc.shape
        c_out, _, k, _ = w.shape
        ops = kernel_module("conv")
        self.saved, self.ops = (x, w), ops  # backward runs the same backend's im2col/col2im as forward did
        self.output_side = unfolds_output(c, c_out, k, backward_follows=self.records_graph)
        if self.output_side:
            y = ops.col2im(flipped_kernel_matrix(w) @ _matrix(xc), (c_out, n, h, wd), k)
        else:
            y = (w.reshape(c_out, c * k * k) @ ops.im2col(xc, k)).reshape(c_out, n, h, wd)
        if self.activation == "relu":
            self.epilogue = kernel_module("bias_relu")
            bias = b if b is not None else get_array_module(y).zeros(c_out, dtype=y.dtype)
            self.epilogue.forward(y.reshape(c_out, -1), bias)  # in place: y is now the activation
            self.saved = (x, w, y)
        elif b is not None:
            y += b[:, None, None, None]
        return self._out(y)

    def backward(self, gy):
        x, w = self.saved[:2]
        xc, gc = self._channel_major_view(x), self._channel_major_view(gy)
        c_out, c, k, _ = w.shape
        ops = self.ops
        need_x, need_w = self.needs_input_grad[0], self.needs_input_grad[1]
        need_b = len(self.needs_input_grad) == 3 and self.needs_input_grad[2]
        gx = gw = gb = None
        if self.activation == "relu":  # gc becomes the gradient of the pre-activation; the bias's comes with it
            gz, gb = self.epilogue.backward(self.saved[2].reshape(c_out, -1), _matrix(gc))
            gc = gz.reshape(gc.shape)
        elif need_b:
            gb = gc.sum(axis=(1, 2, 3))
        if self.output_side:
            g = ops.im2col(gc, k)  # (C_out·k², N·H·W)
            if need_w:
                gwf = g @ _matrix(xc).T  # (C_out·k², C_in), rows (o, i, j) of the flipped kernel
                gw = gwf.reshape(c_out, k, k, c).transpose(0, 3, 1, 2)[:, :, ::-1, ::-1].copy()
            if need_x:
                gx = self._out((flipped_kernel_matrix(w).T @ g).reshape(xc.shape))
        else:
            g = _matrix(gc)  # (C_out, N·H·W)
            if need_w:
                gw = (g @ ops.im2col(xc, k).T).reshape(w.shape)  # Σ over all N·H·W pixels in one GEMM
            if need_x:
                gx = self._out(ops.col2im(w.reshape(c_out, c * k * k).T @ g, xc.shape, k))
        return (gx, gw) if len(self.needs_input_grad) == 2 else (gx, gw, gb if need_b else None)


def conv2d(x, w, b=None, layout="NCHW", activation=None):
    """Stride-1, 'same'-padded 2-D convolution of ``x`` (N, C_in, H, W), or (C_in, N, H, W) with
    ``layout="CNHW"``, with ``w`` (C_out, C_in, k, k), k odd; the output has the input's layout.
    ``activation="relu"``: max(conv + b, 0), fused (see the module docstring)."""
    op = Conv2d(layout, activation)
    return op(x, w) if b is None else op(x, w, b)
