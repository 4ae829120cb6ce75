"""2-D convolution, stride 1, 'same' zero padding, odd square kernels (Glow and RealNVP use 1x1 and 3x3).

Two layouts for inputs and outputs: ``"NCHW"`` (the papers' code, the default) and ``"CNHW"`` (channel-major,
the layout every product works in). Inside, the batch is folded into the GEMMs' long axis: the input is read
as x (C_in, N, H, W) and each product is a GEMM over all N·H·W pixels at once. How the GEMMs are laid out is
the ``conv`` kernel family's business (``kernels/dispatch.py`` picks per backend):

- ``kernels/cpu/conv.py`` (CPU, the ``numba`` backend): k² GEMMs over shifted windows of the padded input,
  accumulated by BLAS in place; no unfolded buffer at all;
- ``kernels/reference/conv.py`` (the NumPy twin, also the CuPy path): im2col/col2im and one GEMM, unfolding the
  side with fewer channels.

Both give ``forward(x, w, backward_follows) -> y`` and ``backward(x, w, gy, need_x, need_w) -> (dx, dw)`` in
the channel-major layout, and are tested against each other and against nested loops.

Why the CNHW layout exists: an NCHW tensor has to be transposed to that matrix shape and the result transposed
back, one copy of each input, output and gradient of every convolution. A network that keeps its hidden
activations in CNHW (``nflow/flows/nets.py``: Glow's conv3x3 - ReLU - conv1x1 - ReLU - ZeroConv3x3 with 256 or
512 hidden channels) pays those copies only at its two ends, on the few channels of the coupling's halves. At
Glow's sizes (N=64, 256 channels, 14x14, float32) each such copy is 12.8 MB, a sizeable fraction of the 1x1
conv's GEMM (``python -m benchmarks.conv2d_roofline``; the figures are in benchmarks/RESULTS.md).

``activation="relu"`` fuses the ReLU that follows the hidden convolutions of the coupling networks into the
op, and the op hands it to the ``conv`` family (``forward(..., relu_bias=b)``, ``relu_backward``): the bias add
and the ReLU are one in-place pass over the GEMM's output (kernel family ``bias_relu``), or no pass of their own
where nflow's own CPU kernels run (``kernels/cpu/conv_jit.py``: folded into the copy out of the anchor grid);
backward, the ReLU's mask and the bias gradient are one pass before the GEMMs, or folded into the padding of the
gradient. The pre-activation is never kept, and there is no separate ReLU node in the graph.

Cost: 2·N·C_out·C_in·k²·H·W FLOPs forward, twice that backward (one GEMM for dx, one for dW), either layout.
Memory: backward keeps the input and the weight; any padded or unfolded buffer is rebuilt in backward rather
than kept — except an activation that nflow's own CPU kernels hand out as a padded view (the interior of a
zero-bordered buffer, 12-21 % larger than the compact array at RealNVP's sizes), which the next convolution reads
in place (``kernels/cpu/conv_grid.py``).
"""
from nflow.backend import get_array_module
from nflow.kernels.dispatch import kernel_module
from nflow.kernels.reference.conv import batch_major
from nflow.tensor import Function

LAYOUTS = ("NCHW", "CNHW")
ACTIVATIONS = (None, "relu")
CHANNEL_AXIS = {"NCHW": 1, "CNHW": 0}


class Conv2d(Function):
    """y[n, o] = Σ_c Σ_ij w[o, c, i, j] · x_pad[n, c, h+i, w+j] (+ b[o]), in ``layout`` "NCHW" or "CNHW",
    followed by max(·, 0) with ``activation="relu"``. Keeps: the input and the weight (and, with the ReLU, the
    output, channel-major, for its mask). The GEMMs are the ``conv`` kernel family's (see the module docstring).
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
        c_out = w.shape[0]
        ops = kernel_module("conv")
        self.saved, self.ops = (x, w), ops  # backward runs the same backend's kernels as forward did
        if self.activation == "relu":
            bias = b if b is not None else get_array_module(w).zeros(c_out, dtype=w.dtype)
            y = ops.forward(xc, w, backward_follows=self.records_graph, relu_bias=bias)  # the activation
            self.saved = (x, w, y)
            return self._out(y)
        y = ops.forward(xc, w, backward_follows=self.records_graph)  # (C_out, N, H, W)
        if b is not None:
            y += b[:, None, None, None]
        return self._out(y)

    def backward(self, gy):
        x, w = self.saved[:2]
        xc, gc = self._channel_major_view(x), self._channel_major_view(gy)
        need_x, need_w = self.needs_input_grad[0], self.needs_input_grad[1]
        need_b = len(self.needs_input_grad) == 3 and self.needs_input_grad[2]
        gb = None
        if self.activation == "relu":  # the ReLU's mask and the bias's gradient come with the family's backward
            # gy may be overwritten where the walk says nobody else refers to it
            gx, gw, gb = self.ops.relu_backward(xc, w, self.saved[2], gc, need_x=need_x, need_w=need_w,
                                                overwrite_gy=self.may_overwrite(0))
        else:
            if need_b:
                gb = gc.sum(axis=(1, 2, 3))
            gx, gw = self.ops.backward(xc, w, gc, need_x=need_x, need_w=need_w)
        gx = self._out(gx) if gx is not None else None
        return (gx, gw) if len(self.needs_input_grad) == 2 else (gx, gw, gb if need_b else None)


def conv2d(x, w, b=None, layout="NCHW", activation=None):
    """Stride-1, 'same'-padded 2-D convolution of ``x`` (N, C_in, H, W), or (C_in, N, H, W) with
    ``layout="CNHW"``, with ``w`` (C_out, C_in, k, k), k odd; the output has the input's layout.
    ``activation="relu"``: max(conv + b, 0), fused (see the module docstring)."""
    op = Conv2d(layout, activation)
    return op(x, w) if b is None else op(x, w, b)
