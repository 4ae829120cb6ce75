"""Stride-1 'same' convolution as k² GEMMs over shifted windows of the padded input, no im2col: the CPU
implementation of the ``conv`` family; its twin, by another algorithm (im2col/col2im and one GEMM), is
``kernels/reference/conv.py``.

Channel-major throughout: x (C, N, H, W), w (O, C, k, k), y (O, N, H, W), p = k // 2. Pad x once to
x_pad (C, N, Hp, Wp) with Hp = H + 2p, Wp = W + 2p, and read it as the (C, P) matrix X, P = N·Hp·Wp. A pixel
(n, h, w) has the *anchor* column q = n·Hp·Wp + h·Wp + w, and its neighbour (h + i - p, w + j - p) in the
unpadded image is column q + i·Wp + j of X. So, with W_ij = w[:, :, i, j] an (O, C) matrix,

    Y[:, q] = Σ_ij  W_ij · X[:, q + i·Wp + j]              for every anchor q in [0, M),  M = P - (k-1)(Wp+1)

is k² GEMMs, each reading a window of X that starts i·Wp + j columns in: a sub-matrix with leading dimension
P, handed to BLAS as it lies (``kernels/cpu/blas.py``), accumulated into Y with β = 1. Y lives on the anchor grid
(O, N, Hp, Wp); the convolution is its [:, :, :H, :W] corner. Anchors outside that corner (the right and bottom
margins) mix neighbouring images' pixels and are computed and dropped: (Hp·Wp)/(H·W) more FLOPs, 1.15× at 28×28,
1.31× at 14×14, 1.65× at 7×7. What it saves: im2col writes and the GEMM re-reads k² = 9 copies of the input
(115 MB for RealNVP's 64 channels at batch 64, 28×28), col2im as many read-add-writes; here the only copies are the
padded input and the output's corner, each the size of one activation.

Backward, with G the output gradient:

    dx = the same convolution of G with w'[c, o, i, j] = w[o, c, k-1-i, k-1-j]  (flipped, channels swapped)
    dW_ij = Σ_q Ga[:, q] · X[:, q + i·Wp + j]ᵀ               with Ga = G placed on the anchor grid, 0 elsewhere

When it pays (measured with ``python -m benchmarks.conv_shifted``, numbers in ``benchmarks/RESULTS.md``, issue
12): the k² GEMMs have inner dimension C instead of im2col's C·k², and BLAS runs a short inner dimension less
efficiently, while the copies saved grow with the activations, not with C². For RealNVP's 64-channel convs
(batch 64, 28×28) the shifted GEMMs take the forward from 82 to 28 ms, dx from 84 to 28 ms and a training step's
forward + backward from 200 to 117 ms; at 256 channels (14×14) the forward still gains (143 -> 96 ms) but a
training step only breaks even (341 -> 328 ms, within this machine's noise); for the thin convs at the ends of a
coupling network (2 -> 256 or 256 -> 4 channels: a GEMM two rows wide) the shifted GEMMs lose 7-8×. Hence the
rule, :func:`shifted_pays`: both channel counts in [16, 128]; every other conv runs the twin's im2col, which
unfolds the side with fewer channels. Cutting the columns into cache-sized tiles did not pay (64 channels at
28×28: 0.5 MB tiles 45 ms, 8 MB 33 ms, one tile 28 ms).

**nflow's own kernels first, where they run** (:func:`own_kernels_run`: float32 on a CPU their register blocks were
sized for — AVX-512 or AVX2 with FMA, ``kernels/cpu/jit.py`` — k > 1, no side wider than 128 channels — all of
RealNVP's convolutions, none of Glow's at 256-512 hidden channels): ``kernels/cpu/conv_jit.py`` runs the same two
algorithms with GEMM micro-kernels of its own on nflow's own threads. BLAS runs the long products of the weight
gradient (64 × 64 outputs summed over 57,600 pixels) at 40 GFLOP/s a core; the own kernel at 75. But the two only
pay together with the threads: OpenBLAS's worker spins ~0.1 s after each threaded call, so a network must make no
threaded BLAS call at all for the own threads to find the second core — hence every convolution of RealNVP's
networks, the thin ones too, and none of Glow's, whose 256-channel 1x1 products BLAS runs at its best rate — but for
the forward of Glow's first conv of each network (2 or 4 -> 256 channels, :func:`thin_forward_runs`): a single
product, which the direct kernel writes once with its bias + ReLU. Measured in ``python -m benchmarks.own_conv`` and
``benchmarks.ab_checkouts`` (``benchmarks/RESULTS.md``, issue 12). float64 (the gradient checks) and float16 keep
the BLAS and twin paths.
"""
import numpy as np

from nflow.kernels.cpu import bias_relu, blas, conv_jit
from nflow.kernels.cpu.blas import gemm
from nflow.kernels.reference import conv as im2col_conv

# The channel counts (both of them) for which the shifted GEMMs beat im2col (see the module docstring).
SHIFTED_MIN_CHANNELS = 16
SHIFTED_MAX_CHANNELS = 128
# The widest side for which nflow's own kernels run a k x k conv (k > 1) instead of BLAS: RealNVP's networks (64
# hidden channels, 1-4 at the ends) run on them entirely; Glow's (256-512 hidden) stay on BLAS (module docstring).
OWN_MAX_CHANNELS = 128


def own_kernels_run(c_in, c_out, k, dtype=np.float32):
    """Whether ``kernels/cpu/conv_jit.py`` (nflow's own kernels and threads) runs this conv: float32 where this
    process can compile them and they were built for this CPU's vectors (``conv_jit.pays``: AVX-512, or AVX2 with
    FMA), k > 1, neither side wider than OWN_MAX_CHANNELS."""
    return conv_jit.pays(dtype) and k > 1 and max(c_in, c_out) <= OWN_MAX_CHANNELS


def thin_forward_runs(c_in, c_out, k, dtype=np.float32):
    """Whether a forward with the bias + ReLU epilogue that the own kernels would not otherwise run (a side wider
    than OWN_MAX_CHANNELS: Glow's 2 or 4 -> 256 channels) runs ``conv_jit.thin_forward`` instead of BLAS: float32
    where the own kernels compile and pay (``conv_jit.pays``), k > 1, a thin input (C_in·k² ≤
    ``conv_jit.DIRECT_MAX_DEPTH``). BLAS writes the wide output three times there (zeroes for β = 0, the short
    product, the epilogue); the direct kernel once. Measured in Glow's training step (batch 64): 2 -> 256 at 14×14
    3.44 -> 2.55 ms a call; built for AVX2 (``znver3``, 8-float blocks) 29.6 -> 20.7 ms a step of 8 calls, though
    8.4 -> 10.9 at 7×7 (benchmarks/RESULTS.md, issue 12, tenth session)."""
    return conv_jit.pays(dtype) and k > 1 and c_in * k * k <= conv_jit.DIRECT_MAX_DEPTH


def shifted_pays(c_in, c_out, k, dtype=np.float32):
    """Whether the k² shifted GEMMs run this conv (else the twin's im2col does); never where NumPy's BLAS could
    not be found (``kernels/cpu/blas.py``), nor for a dtype BLAS has no GEMM for (float16)."""
    return blas.AVAILABLE and np.dtype(dtype) in blas.DTYPES and k > 1 and all(SHIFTED_MIN_CHANNELS <= c <= SHIFTED_MAX_CHANNELS for c in (c_in, c_out))


def _padded_matrix(x, p):
    """x (C, N, H, W), any strides -> a zero-bordered C-ordered (C, N, H+2p, W+2p) array."""
    c, n, h, w = x.shape
    padded = np.zeros((c, n, h + 2 * p, w + 2 * p), dtype=x.dtype)
    padded[:, :, p:p + h, p:p + w] = x
    return padded


def _shifted_products(xpad, wk, out_rows):
    """Y[:, q] = Σ_ij wk[i, j] @ X[:, q + i·Wp + j] for q in [0, M): Y on the anchor grid, shape of ``xpad``
    with ``out_rows`` channels; the last P - M anchors are left unwritten (they fall outside every image)."""
    c, n, hp, wp = xpad.shape
    k = wk.shape[0]
    total = n * hp * wp
    anchors = total - (k - 1) * (wp + 1)
    y = np.empty((out_rows, n, hp, wp), dtype=xpad.dtype)
    for i in range(k):
        for j in range(k):
            gemm(out_rows, anchors, c, wk, c, xpad, total, y, total, a_offset=(i * k + j) * out_rows * c,
                 b_offset=i * wp + j, beta=0.0 if i == j == 0 else 1.0)
    return y


def _kernel_blocks(w):
    """(O, C, k, k) -> (k, k, O, C), C-ordered: each W_ij a contiguous (O, C) matrix."""
    return np.ascontiguousarray(w.transpose(2, 3, 0, 1))


def _corner(y, h, w):
    """The convolution out of the anchor grid: its [:, :, :H, :W] corner, C-ordered."""
    return np.ascontiguousarray(y[:, :, :h, :w])


def shifted_forward(x, w):
    """The stride-1 'same' correlation of x (C, N, H, W) with w (O, C, k, k), k > 1, by the shifted GEMMs: a
    C-ordered (O, N, H, W) array."""
    _, _, h, wd = x.shape
    y = _shifted_products(_padded_matrix(x, w.shape[2] // 2), _kernel_blocks(w), w.shape[0])
    return _corner(y, h, wd)


def forward(x, w, backward_follows=False, relu_bias=None):
    """y (O, N, H, W) = conv(x (C, N, H, W), w (O, C, k, k)), C-ordered (or, where the own kernels run, perhaps a
    padded view: ``conv_jit._padded_output``); ``backward_follows`` steers the twin's choice of side where the twin
    runs. With ``relu_bias`` (O,): max(y + relu_bias, 0) — fused into the copy out of the anchor grid where the own
    kernels run, or into the product's stores for a thin input (:func:`thin_forward_runs`), else
    ``kernels/cpu/bias_relu.py``'s pass after the GEMMs."""
    if own_kernels_run(x.shape[0], w.shape[0], w.shape[2], x.dtype):
        return conv_jit.forward(x, w, backward_follows, relu_bias)
    if relu_bias is not None and thin_forward_runs(x.shape[0], w.shape[0], w.shape[2], x.dtype):
        return conv_jit.thin_forward(x, w, relu_bias)
    if not shifted_pays(x.shape[0], w.shape[0], w.shape[2], x.dtype):
        y = im2col_conv.forward(x, w, backward_follows)
    else:
        y = shifted_forward(x, w)
    return y if relu_bias is None else im2col_conv.relu_epilogue(bias_relu, y, relu_bias)


def backward(x, w, gy, need_x=True, need_w=True):
    """(dx, dw) of the convolution for the output gradient gy (O, N, H, W); None where not needed."""
    if own_kernels_run(x.shape[0], w.shape[0], w.shape[2], x.dtype):
        return conv_jit.backward(x, w, gy, need_x, need_w)
    if not shifted_pays(x.shape[0], w.shape[0], w.shape[2], x.dtype):
        return im2col_conv.backward(x, w, gy, need_x, need_w)
    return shifted_backward(x, w, gy, need_x, need_w)


def relu_backward(x, w, y, gy, need_x=True, need_w=True, overwrite_gy=False):
    """(dx, dw, db) of y = max(conv(x, w) + b, 0) for its output gradient gy; the ReLU's mask is fused into the
    padding of gy where the own kernels run (``conv_jit.relu_backward``), else one pass of
    ``kernels/cpu/bias_relu.py`` before :func:`backward` (in gy itself where ``overwrite_gy``)."""
    if own_kernels_run(x.shape[0], w.shape[0], w.shape[2], x.dtype):
        return conv_jit.relu_backward(x, w, y, gy, need_x, need_w, overwrite_gy)
    gz, gb = im2col_conv.relu_mask(bias_relu, y, gy, overwrite_gy)
    return backward(x, w, gz, need_x, need_w) + (gb,)


def shifted_backward(x, w, gy, need_x=True, need_w=True):
    """(dx, dw) by the shifted GEMMs (k > 1): dx a shifted correlation of gy, dW_ij one long GEMM each.

    Both read gy padded once: dx as the correlation's input, dW as G on the anchor grid, which is the same buffer
    read p·Wp + p elements in (anchor (h, w) of the grid is the padded pixel (h + p, w + p); every anchor outside
    the images lands on a zero of the padding, of its own image or of the next one's top rows).
    """
    c, n, h, wd = x.shape
    o, _, k, _ = w.shape
    p = k // 2
    hp, wp = h + 2 * p, wd + 2 * p
    gpad = _padded_matrix(gy, p)
    gx = None
    if need_x:  # w'[c, o, i, j] = w[o, c, k-1-i, k-1-j]
        gx = _corner(_shifted_products(gpad, _kernel_blocks(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)), c), h, wd)
    if not need_w:
        return gx, None
    xpad = _padded_matrix(x, p)
    total = n * hp * wp
    anchors = total - (k - 1) * (wp + 1)
    gwk = np.empty((k, k, o, c), dtype=x.dtype)
    for i in range(k):
        for j in range(k):  # dW_ij = Ga[:, :M] · X[:, i·Wp + j : i·Wp + j + M]ᵀ, Ga = gpad from p·Wp + p on
            gemm(o, c, anchors, gpad, total, xpad, total, gwk, c, a_offset=p * wp + p, b_offset=i * wp + j,
                 c_offset=(i * k + j) * o * c, trans_b=True)
    return gx, np.ascontiguousarray(gwk.transpose(2, 3, 0, 1))
