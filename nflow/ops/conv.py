"""2-D convolution, stride 1, 'same' zero padding, odd square kernels (Glow and RealNVP use 1x1 and 3x3).

Layout: NCHW, as in the papers' code, for inputs, outputs and the internal GEMMs. With the weight as a
``(C_out, C_in·k·k)`` matrix and the input unfolded per sample into columns ``(C_in·k·k, H·W)`` (im2col),
the product ``W @ cols`` lands directly in ``(N, C_out, H·W)``, i.e. NCHW, with no transpose of the output.
A 1x1 convolution needs no unfolding at all: ``W @ x.reshape(N, C_in, H·W)``.

Cost: 2·N·C_out·C_in·k²·H·W FLOPs forward, twice that backward (one GEMM for dx, one for dW).
Memory: backward keeps the input and the weight; the im2col buffer is rebuilt in backward rather than kept,
trading one cheap unfold for k² times the input's memory per layer.
"""
from nflow.backend import get_array_module
from nflow.tensor import Function


def im2col(x, k):
    """(N, C, H, W) -> (N, C·k·k, H·W): every k×k zero-padded neighbourhood as a column."""
    xp = get_array_module(x)
    n, c, h, w = x.shape
    p = k // 2
    xpad = xp.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    cols = xp.empty((n, c, k, k, h, w), dtype=x.dtype)
    for i in range(k):  # k² strided copies; each is one contiguous-in-W block move
        for j in range(k):
            cols[:, :, i, j] = xpad[:, :, i:i + h, j:j + w]
    return cols.reshape(n, c * k * k, h * w)


def col2im(cols, shape, k):
    """The adjoint of :func:`im2col`: (N, C·k·k, H·W) -> (N, C, H, W), overlapping entries summed."""
    xp = get_array_module(cols)
    n, c, h, w = shape
    p = k // 2
    cols = cols.reshape(n, c, k, k, h, w)
    xpad = xp.zeros((n, c, h + 2 * p, w + 2 * p), dtype=cols.dtype)
    for i in range(k):
        for j in range(k):
            xpad[:, :, i:i + h, j:j + w] += cols[:, :, i, j]
    return xpad[:, :, p:p + h, p:p + w]


class Conv2d(Function):
    """y[n, o] = Σ_c Σ_ij w[o, c, i, j] · x_pad[n, c, h+i, w+j] (+ b[o]). Keeps: the input and the weight."""

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
        xp = get_array_module(x)
        n, c, h, wd = x.shape
        c_out, _, k, _ = w.shape
        self.saved = (x, w)
        cols = x.reshape(n, c, h * wd) if k == 1 else im2col(x, k)
        y = xp.matmul(w.reshape(c_out, c * k * k), cols)
        if b is not None:
            y += b[:, None]
        return y.reshape(n, c_out, h, wd)

    def backward(self, gy):
        xp = get_array_module(gy)
        x, w = self.saved
        n, c, h, wd = x.shape
        c_out, _, k, _ = w.shape
        gy = gy.reshape(n, c_out, h * wd)
        wmat = w.reshape(c_out, c * k * k)
        need_x, need_w = self.needs_input_grad[0], self.needs_input_grad[1]
        gx = gw = gb = None
        if need_w:
            cols = x.reshape(n, c, h * wd) if k == 1 else im2col(x, k)
            # Σ_n gy[n] @ cols[n]ᵀ as one GEMM over the (n, pixel) pairs.
            gw = xp.tensordot(gy, cols, axes=([0, 2], [0, 2])).reshape(w.shape)
            del cols
        if need_x:
            gcols = xp.matmul(wmat.T, gy)
            gx = gcols.reshape(x.shape) if k == 1 else col2im(gcols, x.shape, k)
        if len(self.needs_input_grad) == 3 and self.needs_input_grad[2]:
            gb = gy.sum(axis=(0, 2))
        return (gx, gw) if len(self.needs_input_grad) == 2 else (gx, gw, gb)


def conv2d(x, w, b=None):
    """Stride-1, 'same'-padded 2-D convolution of ``x`` (N, C_in, H, W) with ``w`` (C_out, C_in, k, k), k odd."""
    return Conv2d()(x, w) if b is None else Conv2d()(x, w, b)
