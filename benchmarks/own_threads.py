"""Could nflow run the second core itself? GEMMs split over two threads of ours with OpenBLAS at one thread,
against OpenBLAS's own two threads; and Glow's level-1 coupling network run tile by tile on those two threads.

    python -m benchmarks.own_threads [--batch 64] [--repeats 15] [--tiles 256,512,1024,2048]

Why ask (issue 12): OpenBLAS's worker spins for ~0.1 s after every threaded GEMM, so a parallel kernel of ours
finds no free core (benchmarks/RESULTS.md, fourth and fifth sessions). If nflow split its GEMMs over two threads of
its own, with OpenBLAS at one thread (no worker, no spin), the same two threads could run everything else too.

(1) The models' GEMM shapes, C (m×n) = A (m×k) · B (k×n), timed three ways: OpenBLAS's two threads; OpenBLAS at one
thread; two threads of ours at one OpenBLAS thread each, splitting n in halves — or, for a small output summed over
a long k (a convolution's weight gradient), splitting k and adding the two partial products.
(2) Glow's coupling network at level 1 (2 -> 256 3x3, ReLU, 256 -> 256 1x1, ReLU, 256 -> 4 3x3; no gradient) as
nflow runs it (whole-array ops, OpenBLAS's two threads) against a tile pipeline: each of our two threads takes
half of the pixels and pushes tiles of T columns through all three layers, the hidden activations staying in cache.

The threads of ours are a one-worker ``ThreadPoolExecutor`` plus the calling thread; BLAS is called through
ctypes (``kernels/cpu/blas.py``), which releases the GIL. Medians of ``--repeats`` calls after warm-up.
"""
import argparse
import ctypes
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

from benchmarks.machine import median_time
from nflow.cli.parser import checked, positive_int
from nflow.kernels.cpu import bias_relu, blas
from nflow.kernels.reference import conv

# OpenBLAS's thread-count calls: the renamed symbols of NumPy's wheels, then the plain ones of other builds
THREAD_CALL_PATTERNS = ("scipy_openblas_{}_num_threads64_", "openblas_{}_num_threads64_", "openblas_{}_num_threads")
THREADS = 2  # the comparison is about two cores: OpenBLAS's two threads against two of ours
# (label, m, k, n at batch 64, split): n and k scale with the batch where they count pixels
GEMMS = (("Glow 1x1 conv 256 -> 256, 14x14", 256, 256, 12544, "n"),
         ("Glow thin conv 2 -> 256 (k = 18), 14x14", 256, 18, 12544, "n"),
         ("RealNVP dW 64 x 64 over 28x28's padded grid", 64, 57600, 64, "k"),
         ("Glow dW 256 x 256 over 14x14", 256, 12544, 256, "k"))
BATCH = 64
HIDDEN, HALF_CHANNELS, SIDE = 256, 2, 14  # Glow's level 1 on MNIST: 2 of 4 channels condition, 14x14

tile_widths = checked(lambda text: tuple(int(t) for t in text.split(",")), lambda ts: min(ts) >= 1,
                      "comma-separated positive integers")


def blas_thread_calls():
    """(set_num_threads, get_num_threads) of NumPy's OpenBLAS as callables, or None where that library has none."""
    if not blas.AVAILABLE:
        return None
    library = ctypes.CDLL(blas.LIBRARY)
    for pattern in THREAD_CALL_PATTERNS:
        setter, getter = pattern.format("set"), pattern.format("get")
        if hasattr(library, setter) and hasattr(library, getter):
            set_threads, get_threads = getattr(library, setter), getattr(library, getter)
            set_threads.argtypes, set_threads.restype = [ctypes.c_int], None
            get_threads.argtypes, get_threads.restype = [], ctypes.c_int
            return set_threads, get_threads
    return None


def median_ms(fn, repeats):
    return 1e3 * median_time(fn, repeats, warmup=2)


def split_gemm(pool, a, b, c, split):
    """c = a @ b (a @ bᵀ when splitting k) with each half on one thread: halves of n (columns of b and c), or of
    k (then summed)."""
    m, k = a.shape
    n = c.shape[1]
    if split == "n":
        half = n // 2
        rest = pool.submit(blas.gemm, m, n - half, k, a, k, b, n, c, n, 0, half, half)
        blas.gemm(m, half, k, a, k, b, n, c, n)
        rest.result()
        return c
    half = k // 2  # here b is stored (n, k) and read transposed, as a weight gradient's Xᵀ is
    partial = np.empty_like(c)
    rest = pool.submit(blas.gemm, m, n, k - half, a, k, b, k, partial, n, half, half, 0, False, True)
    blas.gemm(m, n, half, a, k, b, k, c, n, trans_b=True)
    rest.result()
    c += partial
    return c


def gemm_rows(pool, set_threads, batch, repeats, rng):
    rows = []
    for label, m, k, n, split in GEMMS:
        k, n = (max(k * batch // BATCH, 2), n) if split == "k" else (k, max(n * batch // BATCH, 2))
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((n, k) if split == "k" else (k, n), dtype=np.float32)
        operand = b.T if split == "k" else b  # a view: BLAS reads it transposed
        c = np.empty((m, n), dtype=np.float32)
        set_threads(THREADS)
        theirs = median_ms(lambda: np.matmul(a, operand, out=c), repeats)
        set_threads(1)
        single = median_ms(lambda: np.matmul(a, operand, out=c), repeats)
        ours = median_ms(lambda: split_gemm(pool, a, b, c, split), repeats)
        want = a.astype(np.float64) @ operand.astype(np.float64)
        error = float(np.abs(c - want).max() / np.abs(want).max())
        set_threads(THREADS)
        rows.append((f"{label} ({m}×{k}·{k}×{n}, split {split})", theirs, single, ours, error))
    return rows


@njit(cache=True, nogil=True, error_model="numpy")
def _bias_relu(z, b):
    """z ← max(z + b, 0) row by row, as ``kernels/cpu/bias_relu.py``'s forward, but releasing the GIL so that the
    two threads' epilogues run at once (nflow's kernels are called from one thread and do not)."""
    for c in range(z.shape[0]):
        row, bias = z[c], b[c]
        zero = type(bias)(0.0)
        for j in range(z.shape[1]):
            v = row[j] + bias
            row[j] = zero if v < zero else v


class CouplingNet:
    """Glow's level-1 coupling network with random weights, whole (nflow's ops) or as a tile pipeline."""

    def __init__(self, batch, rng):
        self.x = rng.standard_normal((HALF_CHANNELS, batch, SIDE, SIDE), dtype=np.float32)
        self.w1 = (rng.standard_normal((HIDDEN, HALF_CHANNELS, 3, 3)) * 0.1).astype(np.float32)
        self.w2 = (rng.standard_normal((HIDDEN, HIDDEN, 1, 1)) * 0.05).astype(np.float32)
        self.w3 = (rng.standard_normal((2 * HALF_CHANNELS, HIDDEN, 3, 3)) * 0.05).astype(np.float32)
        self.b1, self.b2 = (rng.standard_normal(HIDDEN).astype(np.float32) * 0.1 for _ in range(2))
        self.pixels = batch * SIDE * SIDE

    def whole(self):
        """As nflow's conv op runs it under no_grad: one GEMM per layer over all pixels, the epilogue in place."""
        h1 = conv.forward(self.x, self.w1)
        bias_relu.forward(h1.reshape(HIDDEN, -1), self.b1)
        h2 = conv.forward(h1, self.w2)
        bias_relu.forward(h2.reshape(HIDDEN, -1), self.b2)
        return conv.forward(h2, self.w3)

    def tiled(self, pool, tile):
        """Each thread pushes its half of the pixels through the three layers, ``tile`` columns at a time; the
        last layer's k² shifted products are summed (col2im) once at the end, since a tile's neighbours are not
        its own."""
        cols = conv.im2col(self.x, 3)
        taps = np.empty((self.w3.shape[0] * 9, self.pixels), dtype=np.float32)
        half = self.pixels // 2
        rest = pool.submit(self._tiles, cols, taps, half, self.pixels, tile)
        self._tiles(cols, taps, 0, half, tile)
        rest.result()
        return conv.col2im(taps, (self.w3.shape[0],) + self.x.shape[1:], 3)

    def _tiles(self, cols, taps, begin, end, tile):
        w1 = self.w1.reshape(HIDDEN, -1)
        w2 = self.w2.reshape(HIDDEN, HIDDEN)
        w3 = np.ascontiguousarray(conv.flipped_kernel_matrix(self.w3))
        for start in range(begin, end, tile):
            n = min(tile, end - start)
            if start == begin or n < tile:  # the activations of one tile, kept in cache from tile to tile
                h1, h2 = np.empty((HIDDEN, n), dtype=np.float32), np.empty((HIDDEN, n), dtype=np.float32)
            blas.gemm(HIDDEN, n, w1.shape[1], w1, w1.shape[1], cols, self.pixels, h1, n, b_offset=start)
            _bias_relu(h1, self.b1)
            blas.gemm(HIDDEN, n, HIDDEN, w2, HIDDEN, h1, n, h2, n)
            _bias_relu(h2, self.b2)
            blas.gemm(w3.shape[0], n, HIDDEN, w3, HIDDEN, h2, n, taps, self.pixels, c_offset=start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=positive_int, default=BATCH)
    parser.add_argument("--repeats", type=positive_int, default=15)
    parser.add_argument("--tiles", type=tile_widths, default=(256, 512, 1024, 2048),
                        help="comma-separated tile widths T (positive integers)")
    args = parser.parse_args(argv)
    calls = blas_thread_calls()
    if calls is None:
        print("own_threads: NumPy's BLAS offers no openblas_set_num_threads here "
              f"({blas.UNAVAILABLE_REASON or blas.LIBRARY}); nothing to measure")
        return
    set_threads, get_threads = calls
    before = get_threads()
    pool = ThreadPoolExecutor(1)
    try:
        measure(args, set_threads, pool)
    finally:  # the process's BLAS as it was
        set_threads(before)
        pool.shutdown()


def measure(args, set_threads, pool):
    rng = np.random.default_rng(0)
    print(f"BLAS: {os.path.basename(blas.LIBRARY)}; batch {args.batch}; load {os.getloadavg()[0]:.2f}; "
          f"ms, median of {args.repeats}")
    print("\n| GEMM | OpenBLAS, 2 threads | OpenBLAS, 1 thread | 2 threads of ours, OpenBLAS at 1 | max rel. error |")
    print("|---|---|---|---|---|")
    for label, theirs, single, ours, error in gemm_rows(pool, set_threads, args.batch, args.repeats, rng):
        print(f"| {label} | {theirs:.2f} | {single:.2f} | {ours:.2f} | {error:.0e} |")
    net = CouplingNet(args.batch, rng)
    set_threads(THREADS)
    reference = net.whole()
    rows = [("whole arrays, OpenBLAS's 2 threads (as nflow runs it)", median_ms(net.whole, args.repeats), 0.0)]
    for tile in args.tiles:
        set_threads(1)
        error = float(np.abs(net.tiled(pool, tile) - reference).max() / np.abs(reference).max())
        rows.append((f"tiles of {tile} columns, 2 threads of ours", median_ms(lambda: net.tiled(pool, tile),
                                                                             args.repeats), error))
        set_threads(THREADS)
    print(f"\nGlow's level-1 coupling network ({HALF_CHANNELS} -> {HIDDEN} 3x3, ReLU, {HIDDEN} -> {HIDDEN} 1x1, "
          f"ReLU, {HIDDEN} -> {2 * HALF_CHANNELS} 3x3), batch {args.batch}, no gradient:\n")
    print("| how | ms | max rel. error against whole |")
    print("|---|---|---|")
    for label, ms, error in rows:
        print(f"| {label} | {ms:.2f} | {error:.0e} |")


if __name__ == "__main__":
    main()
