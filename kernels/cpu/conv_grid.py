"""The anchor grid of ``kernels/cpu/conv_jit.py``'s convolutions: its geometry (:class:`Grid`), the aligned
buffers it lives in (:func:`aligned_empty`), the copies into and out of it (with the bias + ReLU epilogue folded in,
``kernels/cpu/grid_epilogue.py``), and the padded views that let one convolution's output be the next one's padded
input without a copy (:func:`register_padded_view`, :func:`padded_buffer`). Read ``conv_jit.py``'s docstring
first for what the grid is for.
"""
import weakref

import numpy as np

from nflow.kernels.cpu import grid_epilogue, threads
from nflow.kernels.cpu.gemm_ir import ALIGN, LANES, NR

L1_SET_STRIDE = 1024          # floats (4 KiB): rows this far apart share L1 sets, so row lengths avoid multiples
ROW_QUANTUM = max(LANES, ALIGN // 4)  # floats: rows this many long keep every row's first anchor on a cache line


class Grid:
    """The padded anchor grid of a batch, each channel one row ``ld`` floats long. The images are laid end to end
    with their borders shared: every image row is followed by p = k // 2 zeros, which are its right border and the
    next row's left border at once, and every image by p zero rows, its bottom border and the next image's top;
    ``first_anchor`` = p·Wp + p zeros lead. So an image takes (H + p) × (W + p) = Hp × Wp cells, not
    (H + 2p) × (W + 2p): the kernels compute an output for every cell (the border cells' are dropped), 7 % more
    than the outputs at 28×28 and 15 % at 14×14, against 15 % and 31 % with a border of its own on every side.

    Pixel (n, r, c) of a channel sits at ``first_anchor + (n·Hp + r)·Wp + c``; anchor q is the top-left tap of
    the window whose centre is ``first_anchor + q``, so the output of pixel (n, r, c) is anchor
    (n·Hp + r)·Wp + c, and its taps read q + i·Wp + j for i, j < k, never outside the row: row ``ld`` leaves room
    past the last anchor for the kernels' whole strips and for the largest shift."""

    def __init__(self, n, h, w, k):
        self.n, self.h, self.w, self.k, self.p = n, h, w, k, k // 2
        self.hp, self.wp = h + self.p, w + self.p
        self.first_anchor = self.p * (self.wp + 1)    # leading zeros: aligned in every buffer (aligned_empty)
        self.anchors = n * self.hp * self.wp          # one per cell: every output pixel's, and the borders'
        self.total = self.first_anchor + self.anchors  # where the laid-out images end; zeros from here to ld
        self.reach = (k - 1) * (self.wp + 1)          # the largest tap shift
        self.n_end = -(-self.anchors // NR) * NR      # whole strips
        ld = -(-(self.n_end + self.reach) // ROW_QUANTUM) * ROW_QUANTUM
        self.ld = ld + ROW_QUANTUM if ld % L1_SET_STRIDE == 0 else ld
        self.key = (n, h, w, k)

    def cells(self, buffer, start):
        """buffer (rows, ld) from ``start`` on as (rows, N, Hp, Wp): each image with its bottom rows and right
        columns of borders."""
        return buffer[:, start:start + self.anchors].reshape(buffer.shape[0], self.n, self.hp, self.wp)

    def padded(self, a):
        """a (C, N, H, W), any strides -> its zero-bordered (C, ld) float32 buffer. One pass: the borders and the
        slack are zeroed and the interior copied, the channels split over the threads (NumPy releases the GIL
        while it copies) — or none, where ``a`` is a padded view of this grid (``conv_jit._padded_output``)."""
        c = a.shape[0]
        made_here = padded_buffer(a, self)
        if made_here is not None:  # a padded view of this grid's shape: its buffer is the padded input as it is
            return made_here
        buffer = aligned_empty((c, self.ld), first=self.first_anchor)
        images = self.cells(buffer, self.first_anchor)
        h, w = self.h, self.w

        def fill(lo, hi):
            part = images[lo:hi]
            buffer[lo:hi, :self.first_anchor] = 0
            part[:, :, h:] = 0
            part[:, :, :h, w:] = 0
            buffer[lo:hi, self.total:] = 0
            part[:, :, :h, :w] = a[lo:hi]

        threads.split(fill, threads.ranges(0, c, 1))
        return buffer

    def offsets(self, channels, count=None):
        """The row offset of every (tap i, tap j, channel) of a padded buffer, in that order, as int64; padded to
        ``count`` entries by repeating the first (their columns are computed and dropped)."""
        taps = np.arange(self.k)
        shifts = (taps[:, None] * self.wp + taps[None, :]).reshape(-1)
        offs = (shifts[:, None] + np.arange(channels)[None, :] * self.ld).reshape(-1)
        if count is not None and count > offs.size:
            offs = np.concatenate([offs, np.full(count - offs.size, offs[0])])
        return np.ascontiguousarray(offs, dtype=np.int64)

    def corner(self, y, rows, relu_bias=None):
        """The convolution out of the anchor grid: rows [0, rows) of y (≥ rows, ld), each image's [:H, :W] cells,
        as a C-ordered (rows, N, H, W) array — with ``relu_bias`` (rows,), max(· + relu_bias, 0) in the same pass
        (``kernels/cpu/grid_epilogue.py``); the rows split over the threads."""
        out = np.empty((rows, self.n, self.h, self.w), dtype=np.float32)
        if relu_bias is not None:
            bias = np.ascontiguousarray(relu_bias, dtype=np.float32)
            threads.split(grid_epilogue.corner_bias_relu, [(y, bias, out, self.hp, self.wp, lo, hi)
                                                           for lo, hi in threads.ranges(0, rows, 1)])
            return out
        grid = self.cells(y, 0)

        def copy(lo, hi):
            out[lo:hi] = grid[lo:hi, :, :self.h, :self.w]

        threads.split(copy, threads.ranges(0, rows, 1))
        return out

    def padded_masked(self, gy, y):
        """(G, gb): the ReLU's backward fused into :meth:`padded` — G the zero-bordered (C, ld) buffer of
        gy · [y > 0], gb its per-channel sums (the bias gradient); gy and y (C, N, H, W), any strides."""
        c = gy.shape[0]
        buffer = aligned_empty((c, self.ld), first=self.first_anchor)
        gb = np.empty(c, dtype=np.float32)
        threads.split(grid_epilogue.pad_masked, [(gy, y, buffer, gb, self.first_anchor, self.hp, self.wp, lo, hi)
                                                 for lo, hi in threads.ranges(0, c, 1)])
        return buffer, gb


# ------------------------------------------------------------------------------------ padded views (zero-copy)
# id(view) -> (weak reference to the view, its grid's (rows, ld) buffer, the grid's key). A convolution whose
# output feeds another on the same grid (RealNVP: the thin first conv into the 64 -> 64 one) writes it straight
# into a zero-bordered buffer and hands out the interior as a strided view; the next one's padded() finds the view
# here and reads the buffer as it is, in its forward and again for its weight gradient. Only views made here are
# registered, and only their interiors are reachable from outside, so the borders stay zero. An entry dies with
# its view.
_PADDED_VIEWS = {}


def register_padded_view(view, buffer, grid):
    """Record ``view`` (the interior of ``buffer``, zero-bordered on ``grid``) until it dies."""
    key = id(view)
    _PADDED_VIEWS[key] = (weakref.ref(view, lambda _, key=key: _PADDED_VIEWS.pop(key, None)), buffer, grid.key)


def padded_buffer(a, grid):
    """The (C, ld) buffer behind ``a`` if ``a`` is a padded view made on a grid of this shape, else None."""
    entry = _PADDED_VIEWS.get(id(a))
    if entry is None or entry[0]() is not a or entry[2] != grid.key:
        return None
    return entry[1][:a.shape[0]]


def aligned_empty(shape, first=0):
    """A C-ordered float32 array of ``shape`` whose flat element ``first`` starts on an ALIGN-byte boundary (so,
    with rows a multiple of ROW_QUANTUM long, that element of every row). NumPy promises only 16-byte alignment, and a
    vector load that straddles two cache lines costs two: aligning the gradient's anchors and the outputs made the
    weight-gradient kernel 19-24 % faster (benchmarks/RESULTS.md, issue 12, eighth session)."""
    size = int(np.prod(shape))
    raw = np.empty(size + ALIGN // 4, dtype=np.float32)
    start = (-(raw.ctypes.data // 4 + first)) % (ALIGN // 4)
    return raw[start:start + size].reshape(shape)
