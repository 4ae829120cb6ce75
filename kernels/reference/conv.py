"""The convolution of the ``conv`` kernel family by im2col: the NumPy twin (and the CuPy implementation) of
``kernels/cpu/conv.py``, which computes the same thing by another route. Stride 1, 'same' zero padding, odd k,
in the channel-major layout ``(C, N, H, W)`` of ``nflow/ops/conv.py`` (the batch folded into the GEMMs' long axis).

im2col and col2im, the non-GEMM part:

    im2col:  cols[(c, i, j), (n, h, w)] = x[c, n, h + i - p, w + j - p]   (0 outside the image; p = k // 2)
    col2im:  x[c, n, h', w'] = Σ_{i, j} cols[(c, i, j), (n, h' - i + p, w' - j + p)]   (its adjoint)

Shapes: x (C, N, H, W) <-> cols (C·k·k, N·H·W). ``im2col`` accepts any strided view of that shape (an NCHW array
seen through ``x.transpose(1, 0, 2, 3)`` is read in place, never copied first); ``col2im`` returns a new
C-ordered (C, N, H, W) array. Cost: k² copies of the input (im2col) and k² read-add-writes (col2im), all memory
traffic: cols is k² = 9 times the input.

The convolution (:func:`forward`, :func:`backward`): unfolding the input ``x`` into ``cols`` of shape
``(C_in·k², N·H·W)`` makes each product a single large GEMM:

    forward   y  = W @ cols               (C_out, C_in·k²) @ (C_in·k², N·H·W)
    backward  dW = gy @ colsᵀ             (C_out, N·H·W)   @ (N·H·W, C_in·k²)
              dx = col2im(Wᵀ @ gy)        (C_in·k², C_out) @ (C_out, N·H·W)

with ``gy`` the output gradient as a ``(C_out, N·H·W)`` matrix. ``colsᵀ`` is a view (BLAS reads it transposed),
so no GEMM operand is ever copied. A 1x1 convolution needs no unfolding: x *is* the (C_in, N·H·W) matrix.

When the output has fewer channels than the input (Glow's zero-initialised last conv: 256 -> 4 or 16), the
same FLOPs are laid out the other way round, unfolding the *output* side, whose buffer is k²·C_out rows
instead of k²·C_in (64 times smaller for 256 -> 4). With ``Wf`` the kernel flipped in both spatial axes, as a
``(C_out·k², C_in)`` matrix with rows ``(o, i, j)``, and ``x`` as the (C_in, N·H·W) matrix:

    forward   y  = col2im(Wf @ x)         col2im sums the k² shifted products: exactly the correlation
    backward  G  = im2col(gy)             (the adjoint of col2im)
              dx = Wf ᵀ @ G,   dWf = G @ xᵀ

(flipping is what turns col2im's "shift by p - i" into the correlation's "shift by i - p").
The rule, :func:`unfolds_output`: unfold the side with fewer channels (``benchmarks/conv_small_side.py``
measures both sides). With equal channel counts it depends on what follows: forward + backward unfold once
each on the output side (col2im of Z forward, im2col of gy backward, and dx is a plain GEMM) against twice
im2col and once col2im on the input side, so a training step unfolds the output side; a forward alone
(log_prob, sampling) is cheaper on the input side, where the GEMM's inner dimension is C·k² instead of C.
Backward unfolds the side a forward that backward follows chose. The unfolded buffer is rebuilt in backward
rather than kept.
"""
from nflow.backend import get_array_module, is_cupy_array
from nflow.kernels.dispatch import kernel_module


def channel_major(a):
    """(N, C, H, W) -> (C, N, H, W), C-ordered (one transposing copy)."""
    return get_array_module(a).ascontiguousarray(a.transpose(1, 0, 2, 3))


def batch_major(a):
    """(C, N, H, W) -> (N, C, H, W), C-ordered: the inverse of :func:`channel_major` (the same transposition)."""
    return channel_major(a)


def im2col(x, k):
    """(C, N, H, W) -> (C·k·k, N·H·W): every k×k zero-padded neighbourhood as a column."""
    xp = get_array_module(x)
    c, n, h, w = x.shape
    if k == 1:
        return xp.ascontiguousarray(x).reshape(c, n * h * w)
    p = k // 2
    # (C, N, H+2p, W+2p) with a zero border; not numpy.pad, whose generality costs ~25 µs a call (a third of a
    # small conv's forward, measured at Glow's sizes with batch 1)
    xpad = xp.zeros((c, n, h + 2 * p, w + 2 * p), dtype=x.dtype)
    xpad[:, :, p:p + h, p:p + w] = x
    cols = xp.empty((c, k, k, n, h, w), dtype=x.dtype)
    for i in range(k):
        for j in range(k):
            cols[:, i, j] = xpad[:, :, i:i + h, j:j + w]
    return cols.reshape(c * k * k, n * h * w)


def col2im(cols, shape, k):
    """The adjoint of :func:`im2col`: (C·k·k, N·H·W) -> (C, N, H, W) with ``shape`` = (C, N, H, W), overlapping
    entries summed."""
    xp = get_array_module(cols)
    c, n, h, w = shape
    if k == 1:
        return xp.ascontiguousarray(cols).reshape(shape)
    p = k // 2
    cols = cols.reshape(c, k, k, n, h, w)
    xpad = xp.zeros((c, n, h + 2 * p, w + 2 * p), dtype=cols.dtype)
    for i in range(k):
        for j in range(k):
            xpad[:, :, i:i + h, j:j + w] += cols[:, i, j]
    return xp.ascontiguousarray(xpad[:, :, p:p + h, p:p + w])


def unfolds_output(c_in, c_out, k, backward_follows=False):
    """Whether the convolution unfolds the output side: when it has fewer channels, or as many and a backward
    pass will follow (and there is a kernel to unfold)."""
    return k > 1 and (c_out < c_in or (c_out == c_in and backward_follows))


def flipped_kernel_matrix(w):
    """(C_out, C_in, k, k) -> (C_out·k², C_in): row (o, i, j) is w[o, :, k-1-i, k-1-j]."""
    c_out, c_in, k, _ = w.shape
    return w[:, :, ::-1, ::-1].transpose(0, 2, 3, 1).reshape(c_out * k * k, c_in)


def as_matrix(a):
    """A (C, N, H, W) array, any strides, as the C-ordered (C, N·H·W) matrix (copies only a strided view)."""
    return get_array_module(a).ascontiguousarray(a).reshape(a.shape[0], -1)


def forward(x, w, backward_follows=False, relu_bias=None):
    """y (C_out, N, H, W), C-ordered = conv(x (C_in, N, H, W), w (C_out, C_in, k, k)), unfolding the side
    :func:`unfolds_output` picks; with ``relu_bias`` (C_out,), max(y + relu_bias, 0) (:func:`relu_epilogue`)."""
    c, n, h, wd = x.shape
    c_out, _, k, _ = w.shape
    if unfolds_output(c, c_out, k, backward_follows):
        y = col2im(flipped_kernel_matrix(w) @ as_matrix(x), (c_out, n, h, wd), k)
    else:
        y = (w.reshape(c_out, c * k * k) @ im2col(x, k)).reshape(c_out, n, h, wd)
    return y if relu_bias is None else relu_epilogue(_bias_relu_family(y), y, relu_bias)


def backward(x, w, gy, need_x=True, need_w=True):
    """(dx, dw) for the output gradient gy (C_out, N, H, W), on the side a forward that backward follows
    unfolds; None where not needed."""
    c_out, c, k, _ = w.shape
    gx = gw = None
    if unfolds_output(c, c_out, k, backward_follows=True):
        g = im2col(gy, k)  # (C_out·k², N·H·W)
        if need_w:  # (C_out·k², C_in), rows (o, i, j) of the flipped kernel, computed as its transpose: with
            # the many rows on the left, OpenBLAS runs this long product 1.3-1.4x faster (Glow's ZeroConv, 256 -> 4
            # channels at 14x14, batch 64: 2.3 -> 1.6 ms; benchmarks/RESULTS.md, issue 12, ninth session)
            gwf = (as_matrix(x) @ g.T).T
            gw = gwf.reshape(c_out, k, k, c).transpose(0, 3, 1, 2)[:, :, ::-1, ::-1].copy()
        if need_x:
            gx = (flipped_kernel_matrix(w).T @ g).reshape(x.shape)
    else:
        g = as_matrix(gy)  # (C_out, N·H·W)
        if need_w:
            gw = (g @ im2col(x, k).T).reshape(w.shape)  # Σ over all N·H·W pixels in one GEMM
        if need_x:
            gx = col2im(w.reshape(c_out, c * k * k).T @ g, x.shape, k)
    return gx, gw


# ---------------------------------------------------------------------- the fused bias + ReLU epilogue (``relu_bias``)
def _bias_relu_family(a):
    """The bias_relu kernels for this array's kind: the NumPy twin for NumPy arrays, the CUDA kernels for CuPy's
    (this module runs the ``conv`` family on both)."""
    return kernel_module("bias_relu", "cupy" if is_cupy_array(a) else "numpy")


def relu_epilogue(epilogue, y, relu_bias):
    """max(y + relu_bias, 0) in place in the C-ordered y (C_out, N, H, W), by the ``bias_relu`` module given."""
    epilogue.forward(y.reshape(y.shape[0], -1), relu_bias)
    return y


def relu_mask(epilogue, y, gy, overwrite_gy=False):
    """(gz, gb): the ReLU's backward gz = gy · [y > 0] (gy's shape) and the bias gradient gb = Σ gz per channel,
    by the ``bias_relu`` module given; in gy itself where ``overwrite_gy`` (the caller owns it) or where gy was a
    strided view, which :func:`as_matrix` copies anyway."""
    g = as_matrix(gy)
    ours = overwrite_gy or not get_array_module(g).may_share_memory(g, gy)
    gz, gb = epilogue.backward(y.reshape(y.shape[0], -1), g, out=g if ours else None)
    return gz.reshape(gy.shape), gb


def relu_backward(x, w, y, gy, need_x=True, need_w=True, overwrite_gy=False):
    """(dx, dw, db) of y = max(conv(x, w) + b, 0) for its output gradient gy: the mask, then :func:`backward`."""
    gz, gb = relu_mask(_bias_relu_family(gy), y, gy, overwrite_gy)
    return backward(x, w, gz, need_x, need_w) + (gb,)
