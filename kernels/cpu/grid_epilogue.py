"""The bias + ReLU epilogue of a convolution fused into the copies ``kernels/cpu/conv_jit.py`` makes anyway
between the anchor grid (``kernels/cpu/conv_grid.py``) and the (C, N, H, W) arrays of the graph. Numba loops that
release the GIL, each over a range of channels, so ``kernels/cpu/threads.py`` runs them on both cores.

    corner_bias_relu:  y[c, n, r, s] = max(Y[c, (n·Hp + r)·Wp + s] + b[c], 0)       (forward, out of the grid)
    pad_masked:        G[c, first + (n·Hp + r)·Wp + s] = gy[c, n, r, s] · [y[c, n, r, s] > 0],  0 elsewhere;
                       gb[c] = Σ G[c, :]                                                  (backward, into the grid)
    masked:            g = gy · [y > 0], gb[c] = Σ g[c]          (backward, y compact or a padded view's buffer)

The same arithmetic as the ``bias_relu`` family (``kernels/reference/bias_relu.py``: its docstring has the
equations and why the epilogue is fused), including NaN: max(NaN, 0) stays NaN, and NaN · 0 stays NaN in the
mask. What fusing saves here is one pass each way over a (channels × pixels) array: the epilogue runs on the
values while they are copied, instead of on the copy afterwards.
"""
from numba import njit

REDUCTION_FLAGS = {"reassoc"}  # lets LLVM vectorise the per-channel sum (as kernels/cpu/bias_relu.py)


@njit(cache=True, nogil=True, error_model="numpy")
def corner_bias_relu(grid, b, out, hp, wp, lo, hi):
    """out (C, N, H, W) rows [lo, hi) = max(grid + b, 0) read from the anchor grid (C', ld), C' ≥ C."""
    _, n, h, w = out.shape
    for c in range(lo, hi):
        row, bias = grid[c], b[c]
        zero = type(bias)(0.0)  # the arrays' dtype: a float32 kernel never widens to float64
        for i in range(n):
            for r in range(h):
                start = (i * hp + r) * wp
                dst = out[c, i, r]
                for s in range(w):
                    v = row[start + s] + bias
                    dst[s] = zero if v < zero else v


@njit(cache=True, nogil=True, fastmath=REDUCTION_FLAGS, error_model="numpy")
def pad_masked(gy, y, buffer, gb, first, hp, wp, lo, hi):
    """buffer (C, ld) rows [lo, hi) = gy · [y > 0] laid out on the padded grid, zeros around it; gb[c] = the row's
    sum (accumulated in float64). gy and y: (C, N, H, W), any strides."""
    _, n, h, w = gy.shape
    ld = buffer.shape[1]
    for c in range(lo, hi):
        row = buffer[c]
        zero = row.dtype.type(0.0)
        for j in range(first):
            row[j] = zero
        total = 0.0
        for i in range(n):
            for r in range(hp):
                start = first + (i * hp + r) * wp
                if r >= h:
                    for s in range(wp):
                        row[start + s] = zero
                    continue
                g_row, y_row = gy[c, i, r], y[c, i, r]
                for s in range(w):
                    gv = g_row[s]
                    v = gv if y_row[s] > 0 else gv * 0  # gy · [y > 0] as the twin: NaN · 0 stays NaN
                    row[start + s] = v
                    total += v
                for s in range(w, wp):
                    row[start + s] = zero
        for j in range(first + n * hp * wp, ld):
            row[j] = zero
        gb[c] = total


@njit(cache=True, nogil=True, fastmath=REDUCTION_FLAGS, error_model="numpy")
def masked(gy, y, first, hp, wp, out, gb, lo, hi):
    """out[lo:hi] = gy · [y > 0] and gb[c] = its row sums (float64), gy and out (C, N, H, W) C-ordered, y's pixel
    (n, r, s) at y[c, first + (n·Hp + r)·Wp + s] of a (C, L) C-ordered array: a padded view's buffer, or a compact
    y as a grid with no border (first = 0, Hp = H, Wp = W). Reading y through its buffer keeps its rows unit-stride
    to the compiler: the padded view itself, a strided array, made this pass 2.5x slower."""
    _, n, h, w = gy.shape
    for c in range(lo, hi):
        total = 0.0
        y_c = y[c]
        for i in range(n):
            for r in range(h):
                g_row, o_row = gy[c, i, r], out[c, i, r]
                at = first + (i * hp + r) * wp
                for s in range(w):
                    gv = g_row[s]
                    v = gv if y_c[at + s] > 0 else gv * 0  # as the twin: NaN · 0 stays NaN
                    o_row[s] = v
                    total += v
        gb[c] = total
