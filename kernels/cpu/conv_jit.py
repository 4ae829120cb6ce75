"""The 'same' stride-1 convolution on nflow's own kernels and threads: the shifted-window algorithm of
``kernels/cpu/conv.py`` (read its docstring first), with the GEMMs done by two micro-kernels written in LLVM IR
(``kernels/cpu/gemm_ir.py``, compiled by ``kernels/cpu/jit.py``) instead of BLAS, split over nflow's own threads
(``kernels/cpu/threads.py``), on the padded anchor grid of ``kernels/cpu/conv_grid.py``.

Both kernels read the padded input X (C, P) through a table of row offsets, one per (tap, channel):
``offs[(i, j, c)] = c·ld + i·Wp + j``, so row (i, j, c) of the "unfolded" input is X[c] shifted by the tap, read in
place: im2col without its buffer.

One change of layout against ``conv.py``'s grid: neighbouring rows and images share their zero borders
(``conv_grid.Grid``), so there are fewer cells whose outputs are computed and dropped — 7 % more than the outputs
at 28×28 instead of 15 %, 15 % at 14×14 instead of 31 % (RealNVP's training step 0.54 → 0.47 s with the aligned
buffers of ``conv_grid.aligned_empty``; benchmarks/RESULTS.md, issue 12, eighth session).

What the grid saves beyond im2col: copies. The bias + ReLU epilogue rides on the copy out of the grid
(``kernels/cpu/grid_epilogue.py``) and the ReLU's backward on the padding of the gradient; and a thin input into a
wide output (RealNVP's first conv of each network) is computed on the grid of its output and handed out as a
*padded view* — the interior of a zero-bordered buffer — which the next convolution on that grid (the 64 → 64
one) reads as its padded input without a copy, in its forward and for its weight gradient
(:func:`_padded_output`; RealNVP's step 0.94, log_prob 0.91 of what it took with the copies).

1. ``packed_gemm`` — Y[o, q] = Σ_kk A[o, kk] · x[offs[kk] + q]: for each strip of :data:`NR` anchors and
   each chunk of :data:`KC` rows of the K = C·k², it copies those shifted rows of the strip into one contiguous
   (KC, NR) block (the BLIS "packed panel", 32 KB: it stays in L1), then runs every block of :data:`MR` output
   rows over it with an MR × NR register block: per kk, :data:`NV` vector loads, MR broadcasts, MR·NV fused
   multiply-adds, the tile carried from chunk to chunk in y. Packing costs K·NR copies per strip against O·K·NR
   multiply-adds, so it pays from a few output rows up; ``direct_gemm`` reads the shifted rows in place
   instead, for one block of rows or a short K (the thin ends of a network), and ``direct_gemm_epilogue`` also
   finishes a padded view's tiles as it stores them (bias, ReLU, zero borders: :func:`_padded_output`). Forward
   and dx (the same correlation of the output gradient with the flipped, transposed kernel) run them, and so does
   :func:`matmul`, on plain rows.
2. ``weight_grad`` — dW[o, kk] = Σ_q G[o, q] · x[offs[kk] + q], G the output gradient on the anchor grid
   (and :func:`matmul_nt` on plain rows):
   a sum over the long pixel axis, so the vector runs along q; a 6 × 4 block of (o, kk) keeps 24 vector partial
   sums while the kernel streams 6 rows of G and 4 shifted rows of X over a chunk of :data:`CHUNK` columns (40 KB,
   in L1), then adds each partial's lanes into dW. The threads split the pixel axis and their dW are summed.

float32 only (:func:`runs`), and picked only on a CPU whose vectors they were built for (:func:`pays`; the blocks
above are AVX-512's, ``gemm_ir.BLOCKS`` holds AVX2's); the model layers' float64 gradient checks run the BLAS path.
Measured against that path and PyTorch in ``python -m benchmarks.own_conv``; where the own kernels run, and why
there, is ``kernels/cpu/conv.py``'s rule (:func:`own_kernels_run`).
"""
import numpy as np

from nflow.kernels.cpu import bias_relu, grid_epilogue, jit, threads
from nflow.kernels.cpu.col2im import col2im
from nflow.kernels.cpu.conv_grid import Grid, aligned_empty, padded_buffer, register_padded_view
from nflow.kernels.cpu.gemm_ir import KC, LANES, MO, MR, NK, NR, PANEL_STRIPS, kernel
from nflow.kernels.reference.conv import as_matrix, flipped_kernel_matrix, im2col, unfolds_output

DIRECT_MAX_ROWS = MR          # at most one block of output rows ...
DIRECT_MAX_DEPTH = 36         # ... or at most 4 channels × 9 taps: read the shifted rows in place, no packing
PANEL_MAX_BLOCKS = 6          # products with at most this many blocks of rows pack PANEL_STRIPS strips at a time
SHIFTED_MIN_CHANNELS = 16     # fewer on either side: unfold that side (im2col), as the twin does


def runs(dtype):
    """Whether the own kernels can run a convolution of this dtype in this process."""
    return jit.AVAILABLE and np.dtype(dtype) == np.float32


def pays(dtype):
    """Whether they run it *and* were built for this CPU's vectors (``jit.PAYS``: AVX-512 or AVX2 with FMA, their
    blocks sized to each). Elsewhere they compute the same, unmeasured, so ``kernels/cpu/conv.py`` keeps BLAS."""
    return runs(dtype) and jit.PAYS


# ----------------------------------------------------------------------------------------------- the two drivers
def _products(a, offs, x, n_end, y, ldy, finish=()):
    """y[r, q] = Σ_kk a[r, kk] · x.flat[offs[kk] + q] for q in [0, n_end) (a multiple of NR), r < rows of y (a
    multiple of MR, ≥ a's rows): the strips split over the threads, the kernel picked by shape. ``finish`` =
    (bias, inside, cells, relu) as addresses and counts: ``direct_gemm_epilogue``'s finishing of a padded output
    (:func:`_padded_output`; a product that reads its rows in place)."""
    rows, depth = a.shape
    blocks = y.shape[0] // MR
    padded = np.zeros((blocks * MR, depth), dtype=np.float32)
    padded[:rows] = a
    packed = np.ascontiguousarray(padded.reshape(blocks, MR, depth).transpose(0, 2, 1))  # (blocks, depth, MR)
    pieces = threads.ranges(0, n_end, NR)
    common = (packed.ctypes.data, blocks, depth, offs.ctypes.data, x.ctypes.data)
    if finish or rows <= DIRECT_MAX_ROWS or depth <= DIRECT_MAX_DEPTH:
        name = "direct_gemm_epilogue" if finish else "direct_gemm"
        threads.split(kernel(name), [common + (lo, hi, y.ctypes.data, ldy) + finish for lo, hi in pieces])
        return
    # a few blocks of rows reuse each packed strip little: pack many strips at a time, reading the rows in long runs
    name, strips = ("panel_gemm", PANEL_STRIPS) if blocks <= PANEL_MAX_BLOCKS else ("packed_gemm", 1)
    panels = [aligned_empty((strips * KC * NR,)) for _ in pieces]  # one per thread, alive through the calls
    threads.split(kernel(name), [common + (lo, hi, y.ctypes.data, ldy, panel.ctypes.data)
                                 for (lo, hi), panel in zip(pieces, panels)])


def _weight_products(g, ldg, grows, offs, columns, x, pixels):
    """(rows, columns) = Σ_{q < pixels} g[r·ldg + q] · x.flat[offs[kk] + q] for the ``grows`` rows of g (an
    address), rows = grows rounded up to MO (the extra rows are junk), columns a multiple of NK (offs that long),
    pixels of LANES. The threads split the pixels; their sums are added."""
    rows = -(-grows // MO) * MO
    pieces = threads.ranges(0, pixels, LANES)
    sums = [np.zeros((rows, columns), dtype=np.float32) for _ in pieces]
    threads.split(kernel("weight_grad"), [(g, ldg, grows, rows // MO, offs.ctypes.data, columns // NK,
                                            x.ctypes.data, lo, hi, total.ctypes.data, columns)
                                           for (lo, hi), total in zip(pieces, sums)])
    return sum(sums[1:], sums[0])


def matmul(a, b, relu_bias=None):
    """a (M, K) @ b (K, N), float32, as a new C-ordered (M, N) array. The kernels read whole strips of NR columns,
    so the last partial strip is copied into a zeroed NR-wide block first (never NumPy's matmul: a threaded BLAS
    call would leave its worker spinning on the core these kernels' threads need). With ``relu_bias`` (M,):
    max(a @ b + relu_bias, 0), each tile finished as ``direct_gemm_epilogue`` stores it, in the one pass that writes
    the output (the direct kernel, whatever K: it pays for a short one, at most DIRECT_MAX_DEPTH)."""
    m, depth = a.shape
    n = b.shape[1]
    b = np.ascontiguousarray(b, dtype=np.float32)
    whole = n // NR * NR
    rows = -(-m // MR) * MR
    finish = ()
    if relu_bias is not None:
        bias = np.zeros(rows, dtype=np.float32)
        bias[:m] = relu_bias
        inside = np.ones(2 * NR, dtype=np.float32)  # a compact output: every cell is a pixel (no border to zero)
        finish = (bias.ctypes.data, inside.ctypes.data, NR, 1)
    y = aligned_empty((rows, n))
    if whole:
        _products(a, np.arange(depth, dtype=np.int64) * n, b, whole, y, n, finish)
    if whole < n:
        tail = np.zeros((depth, NR), dtype=np.float32)
        tail[:, :n - whole] = b[:, whole:]
        y_tail = np.empty((rows, NR), dtype=np.float32)
        _products(a, np.arange(depth, dtype=np.int64) * NR, tail, NR, y_tail, NR, finish)
        y[:, whole:] = y_tail[:, :n - whole]
    return y[:m]


def matmul_nt(g, x):
    """g (M, Q) @ x (N, Q)ᵀ, float32, a new (M, N) array, for a long Q. The kernel reads whole vectors of pixels:
    the last partial vector is copied into zeroed LANES-wide blocks (no BLAS call, as in :func:`matmul`)."""
    m, q = g.shape
    n = x.shape[0]
    rows, columns = -(-m // MO) * MO, -(-n // NK) * NK
    g = np.ascontiguousarray(g, dtype=np.float32)
    x = np.ascontiguousarray(x, dtype=np.float32)
    pixels = q // LANES * LANES
    offs = np.zeros(columns, dtype=np.int64)
    offs[:n] = np.arange(n) * q
    out = np.zeros((rows, columns), dtype=np.float32)
    if pixels:
        out += _weight_products(g.ctypes.data, q, m, offs, columns, x, pixels)
    if pixels < q:
        g_tail = np.zeros((m, LANES), dtype=np.float32)
        g_tail[:, :q - pixels] = g[:, pixels:]
        x_tail = np.zeros((n, LANES), dtype=np.float32)
        x_tail[:, :q - pixels] = x[:, pixels:]
        offs[:n] = np.arange(n) * LANES
        out += _weight_products(g_tail.ctypes.data, LANES, m, offs, columns, x_tail, LANES)
    return np.ascontiguousarray(out[:m, :n])


# ----------------------------------------------------------------------------------------- the two convolutions
def _shifted(c, o):
    """Whether the shifted-window algorithm runs (both sides at least SHIFTED_MIN_CHANNELS), else the unfolded
    one on the side with fewer channels (``kernels/reference/conv.py``), its products on these kernels."""
    return min(c, o) >= SHIFTED_MIN_CHANNELS


def _pads_output(c, o, k):
    """Whether the forward writes a padded view (:func:`_padded_output`): a thin input into a wide output (RealNVP's
    first conv of each network, whose output the 64 -> 64 conv reads next), k > 1. The few input channels are
    padded cheaply; the product reads their shifted rows in place (``direct_gemm_epilogue``: at most
    DIRECT_MAX_DEPTH = 4 × 9 of them)."""
    return k > 1 and c < SHIFTED_MIN_CHANNELS <= o and c * k * k <= DIRECT_MAX_DEPTH


def _correlate(xpad, w, grid):
    """Y (rows, ld) on the anchor grid: Σ over taps and channels of w (O, C, k, k) times the shifted xpad rows."""
    o, c, k, _ = w.shape
    y = aligned_empty((-(-o // MR) * MR, grid.ld))
    _products(w.transpose(0, 2, 3, 1).reshape(o, k * k * c), grid.offsets(c), xpad, grid.n_end, y, grid.ld)
    return y  # columns (i, j, channel) of the weight matrix, as the offsets


def _padded_output(xpad, w, grid, relu_bias):
    """The convolution of xpad (padded on ``grid``) with w as a padded view: the products written first_anchor
    floats into an aligned (rows, ld) buffer, so that output pixel (n, r, s) lands where the grid pads pixel
    (n, r, s), each tile finished as the kernel stores it (``gemm_ir._direct_gemm_ir``'s epilogue: 0 in the border
    cells, where the products computed junk, max(· + b, 0) inside); then only the zeros before the first cell and
    after the last are left to write. One pass over the output where the products and a second pass took two
    (RealNVP's 1 -> 64 forward at 28x28: benchmarks/RESULTS.md, issue 12, ninth session)."""
    o, c, k, _ = w.shape
    rows = -(-o // MR) * MR
    buffer = aligned_empty((rows, grid.ld), first=grid.first_anchor)
    relu = relu_bias is not None
    bias = np.zeros(rows, dtype=np.float32)
    if relu:
        bias[:o] = relu_bias
    cells = grid.hp * grid.wp
    inside = np.zeros((grid.hp, grid.wp), dtype=np.float32)
    inside[:grid.h, :grid.w] = 1
    inside = np.resize(inside.reshape(-1), cells + NR)  # and NR cells more, cyclically: a strip may cross images
    out = buffer[:, grid.first_anchor:]  # anchor q is written at first_anchor + q: the padded pixel it is
    _products(w.transpose(0, 2, 3, 1).reshape(o, k * k * c), grid.offsets(c), xpad, grid.n_end, out, grid.ld,
              finish=(bias.ctypes.data, inside.ctypes.data, cells, int(relu)))
    buffer[:, :grid.first_anchor] = 0
    buffer[:, grid.total:] = 0  # past the last image: the last strip's tail and the slack
    view = grid.cells(buffer[:o], grid.first_anchor)[:, :, :grid.h, :grid.w]
    register_padded_view(view, buffer[:o], grid)
    return view


def thin_forward(x, w, relu_bias):
    """max(conv(x, w) + relu_bias, 0) as a C-ordered (O, N, H, W) float32 array, for a thin input into any number
    of output channels (C·k² ≤ DIRECT_MAX_DEPTH: Glow's first conv of each coupling network, 2 or 4 -> 256
    channels): the few input channels unfolded (im2col: C·k² rows, a fraction of the output's size), then one
    product on the direct kernel that adds the bias and applies the ReLU to each tile as it stores it. BLAS took
    three passes over the (wide) output: zeroing it (β = 0), the product with its short inner dimension, and the
    epilogue (``kernels/cpu/conv.py``'s rule; benchmarks/RESULTS.md, issue 12, tenth session)."""
    o, c, k, _ = w.shape
    _, n, h, wd = x.shape
    return matmul(w.reshape(o, c * k * k), im2col(x, k), relu_bias).reshape(o, n, h, wd)


def forward(x, w, backward_follows=False, relu_bias=None):
    """y (O, N, H, W) float32 = the 'same' correlation of x (C, N, H, W), any strides, with w (O, C, k, k): C-ordered,
    or a padded view (:func:`_pads_output`); ``backward_follows`` steers the unfolded algorithm's side, as in the
    twin. With ``relu_bias`` (O,): max(y + relu_bias, 0), the conv family's fused epilogue (``kernels/cpu/conv.py``)."""
    c, n, h, wd = x.shape
    o, _, k, _ = w.shape
    if _pads_output(c, o, k):
        grid = Grid(n, h, wd, k)
        return _padded_output(grid.padded(x), w, grid, relu_bias)
    if not _shifted(c, o):
        if unfolds_output(c, o, k, backward_follows):
            y = col2im(matmul(flipped_kernel_matrix(w), as_matrix(x)), (o, n, h, wd), k)
        else:
            y = matmul(w.reshape(o, c * k * k), im2col(x, k)).reshape(o, n, h, wd)
        if relu_bias is not None:
            bias_relu.forward(y.reshape(o, -1), relu_bias, split=True)
        return y
    grid = Grid(n, h, wd, k)
    return grid.corner(_correlate(grid.padded(x), w, grid), o, relu_bias)


def backward(x, w, gy, need_x=True, need_w=True):
    """(dx, dw) for the output gradient gy (O, N, H, W); None where not needed."""
    if not _shifted(x.shape[0], w.shape[0]):
        return _unfolded_backward(x, w, gy, need_x, need_w)
    c, n, h, wd = x.shape
    grid = Grid(n, h, wd, w.shape[2])
    return _shifted_backward(x, w, grid, grid.padded(gy), need_x, need_w)


def relu_backward(x, w, y, gy, need_x=True, need_w=True, overwrite_gy=False):
    """(dx, dw, db) of y = max(conv(x, w) + b, 0) for its output gradient gy: the ReLU's mask and the bias's sum
    fused into the padding of gy (shifted windows) or one pass on both threads (unfolded; y may be a padded view).
    gy is never written (``overwrite_gy`` is the family's signature)."""
    o = w.shape[0]
    c, n, h, wd = x.shape
    grid = Grid(n, h, wd, w.shape[2])
    if not _shifted(c, o):
        y_rows = padded_buffer(y, grid)  # y through its padded buffer if it is a padded view, else compact
        layout = (grid.first_anchor, grid.hp, grid.wp) if y_rows is not None else (0, h, wd)
        if y_rows is None:
            y_rows = np.ascontiguousarray(y).reshape(o, -1)
        gz, gb = np.empty(gy.shape, dtype=np.float32), np.empty(o, dtype=np.float32)
        gy = np.ascontiguousarray(gy)
        threads.split(grid_epilogue.masked, [(gy, y_rows) + layout + (gz, gb, lo, hi)
                                             for lo, hi in threads.ranges(0, o, 1)])
        return _unfolded_backward(x, w, gz, need_x, need_w) + (gb,)
    gpad, gb = grid.padded_masked(gy, y)
    return _shifted_backward(x, w, grid, gpad, need_x, need_w) + (gb,)


def _unfolded_backward(x, w, gy, need_x, need_w):
    """The twin's backward (``kernels/reference/conv.py``) with its products on these kernels."""
    o, c, k, _ = w.shape
    gx = gw = None
    if unfolds_output(c, o, k, backward_follows=True):
        g = im2col(gy, k)  # (O·k², N·H·W)
        if need_w:
            gwf = matmul_nt(g, as_matrix(x))  # (O·k², C), rows (o, i, j) of the flipped kernel
            gw = np.ascontiguousarray(gwf.reshape(o, k, k, c).transpose(0, 3, 1, 2)[:, :, ::-1, ::-1])
        if need_x:
            gx = matmul(flipped_kernel_matrix(w).T, g).reshape(x.shape)
    else:
        g = as_matrix(gy)  # (O, N·H·W)
        if need_w:
            gw = matmul_nt(g, im2col(x, k)).reshape(w.shape)
        if need_x:
            gx = col2im(matmul(w.reshape(o, c * k * k).T, g), x.shape, k)
    return gx, gw


def _shifted_backward(x, w, grid, gpad, need_x, need_w):
    """dx is the correlation of gy with w'[c, o, i, j] = w[o, c, k-1-i, k-1-j]; dW[o, c, i, j] = Σ_q G[o, q] ·
    X[c, q + i·Wp + j] over the anchors q, with G the output gradient placed on the anchor grid (zero elsewhere):
    gpad, gy padded on ``grid``."""
    c = x.shape[0]
    o, _, k, _ = w.shape
    gx = gw = None
    if need_x:
        gx = grid.corner(_correlate(gpad, w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3), grid), c)
    if need_w:
        columns = -(-(k * k * c) // NK) * NK
        # anchor q's centre is padded pixel first_anchor + q: G starts that far into gpad's rows (on a cache line)
        g = gpad.ctypes.data + grid.first_anchor * gpad.itemsize
        pixels = -(-grid.anchors // LANES) * LANES
        dw = _weight_products(g, grid.ld, o, grid.offsets(c, count=columns), columns, grid.padded(x), pixels)
        gw = np.ascontiguousarray(dw[:o, :k * k * c].reshape(o, k, k, c).transpose(0, 3, 1, 2))
    return gx, gw
