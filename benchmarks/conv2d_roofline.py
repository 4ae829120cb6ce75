"""nflow's conv2d, forward + backward at Glow's sizes, against the FLOP roofline of this machine's GEMM.

Glow's coupling networks convolve N=64 images of 14x14 (a 28x28 model after one squeeze): 256 -> 256
channels with k=3 and k=1 in the hidden layers, and 256 -> 4 with k=3 in the zero-initialised last layer
(ZeroConv). Every FLOP of a convolution written as GEMMs is a GEMM FLOP, so the best time it can take is

    roofline = FLOPs / (GEMM rate),   FLOPs = 2·N·C_out·C_in·k²·H·W forward, twice that backward,

with the GEMM rate measured in the same run (``benchmarks.machine.gemm_gflops``, an n³ float32 product).
The script also times the pieces of nflow's implementation (unfolding, the three GEMMs, folding back, the
layout transposes) and, as references, other layouts of the same arithmetic: the one nflow/ops/conv.py
started with (a GEMM per sample and ``tensordot`` for dW, :func:`per_sample_conv`), the input-side unfolding
for the ZeroConv shape (:func:`input_side_conv`; nflow unfolds the output side there) and, when PyTorch is
importable, ``torch.nn.functional.conv2d`` on the same data.

    python -m benchmarks.conv2d_roofline [--quick] [--no-torch] [--clock cpu]

``--clock cpu`` times with this process's CPU time instead of wall time, GEMM rate included. On a machine
other work is sharing, with ``OPENBLAS_NUM_THREADS=1``, that gives steadier single-core figures when wall
times are not.
"""
import argparse
import os
import time

import numpy as np

import nflow
import nflow.functional as F
from benchmarks.machine import describe, gemm_gflops, markdown_table, median_time
from nflow.kernels.reference.conv import batch_major, channel_major, col2im, im2col
from nflow.kernels.reference.conv import flipped_kernel_matrix, unfolds_output

# (label, C_in, C_out, k) at N=64, 14x14
CASES = [("k=3, 256->256", 256, 256, 3), ("k=1, 256->256", 256, 256, 1), ("k=3, 256->4 (ZeroConv)", 256, 4, 3)]
GLOW = dict(n=64, h=14, w=14)


def conv_flops(n, c_in, c_out, h, w, k):
    return 2 * n * c_out * c_in * k * k * h * w


def make_inputs(n, c_in, c_out, h, w, k, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c_in, h, w)).astype(np.float32)
    wt = (rng.standard_normal((c_out, c_in, k, k)) / np.sqrt(c_in * k * k)).astype(np.float32)
    b = rng.standard_normal(c_out).astype(np.float32)
    gy = rng.standard_normal((n, c_out, h, w)).astype(np.float32)
    return x, wt, b, gy


# ---------------------------------------------------------------------------------------------- nflow
CLOCK = time.perf_counter


def time_nflow(x, wt, b, gy, repeats, layout="NCHW"):
    """(forward seconds, backward seconds) of nflow's conv2d with all three inputs requiring grad; with
    ``layout="CNHW"`` the input and output gradient are handed in channel-major (as inside Glow's nets)."""
    if layout == "CNHW":
        x, gy = channel_major(x), channel_major(gy)
    tx, tw, tb = (nflow.Tensor(a, requires_grad=True) for a in (x, wt, b))
    forward = median_time(lambda: F.conv2d(tx, tw, tb, layout=layout), repeats, clock=CLOCK)
    samples = []
    for _ in range(repeats + 1):  # the first is a warm-up
        tx.grad = tw.grad = tb.grad = None
        y = F.conv2d(tx, tw, tb, layout=layout)
        start = CLOCK()
        y.backward(gy)
        samples.append(CLOCK() - start)
    return forward, float(np.median(samples[1:]))


def time_pieces(x, wt, gy, repeats):
    """Each step of nflow's conv2d on its own (ms), in the order forward then backward runs them."""
    n, c, h, w = x.shape
    c_out, _, k, _ = wt.shape
    xv, gyv = x.transpose(1, 0, 2, 3), gy.transpose(1, 0, 2, 3)  # channel-major views, no copy
    if unfolds_output(c, c_out, k, backward_follows=True):  # the side a training step uses
        wf = flipped_kernel_matrix(wt)
        x_cm = channel_major(x).reshape(c, -1)
        z = wf @ x_cm
        g = im2col(gyv, k)
        gx_cm = (wf.T @ g).reshape(c, n, h, w)
        y_cm = col2im(z, (c_out, n, h, w), k)
        pieces = [
            ("x to channel-major (x2: forward and backward; none in CNHW)", lambda: channel_major(x), 2),
            ("forward GEMM Wf @ x", lambda: wf @ x_cm, 1),
            ("col2im of the output", lambda: col2im(z, (c_out, n, h, w), k), 1),
            ("output to NCHW (none in CNHW)", lambda: batch_major(y_cm), 1),
            ("im2col of gy", lambda: im2col(gyv, k), 1),
            ("dW GEMM G @ xᵀ", lambda: g @ x_cm.T, 1),
            ("dx GEMM Wfᵀ @ G", lambda: wf.T @ g, 1),
            ("dx to NCHW (none in CNHW)", lambda: batch_major(gx_cm), 1),
        ]
    else:
        wmat = wt.reshape(c_out, c * k * k)
        cols = im2col(xv, k)
        y = (wmat @ cols).reshape(c_out, n, h, w)
        gy_cm = channel_major(gy).reshape(c_out, -1)
        gcols = wmat.T @ gy_cm
        gx_cm = col2im(gcols, (c, n, h, w), k)
        pieces = [
            ("im2col (x2: forward and backward)" if k > 1 else "x to channel-major (x2; none in CNHW)",
             lambda: im2col(xv, k), 2),
            ("forward GEMM W @ cols", lambda: wmat @ cols, 1),
            ("output to NCHW (none in CNHW)", lambda: batch_major(y), 1),
            ("gy to channel-major (none in CNHW)", lambda: channel_major(gy), 1),
            ("dW GEMM gy @ colsᵀ", lambda: gy_cm @ cols.T, 1),
            ("dx GEMM Wᵀ @ gy", lambda: wmat.T @ gy_cm, 1),
            ("col2im" if k > 1 else "dx as a matrix (a reshape)", lambda: col2im(gcols, (c, n, h, w), k), 1),
            ("dx to NCHW (none in CNHW)", lambda: batch_major(gx_cm), 1),
        ]
    return [(name, median_time(fn, repeats, clock=CLOCK) * 1e3 * times) for name, fn, times in pieces]


# ---------------------------------------------------------------------------------------------- other layouts
def input_side_conv(x, wt, gy):
    """nflow's input-side layout forced whatever the channel counts: (y, dW, dx) with one GEMM each."""
    n, c, h, w = x.shape
    c_out, _, k, _ = wt.shape
    wmat = wt.reshape(c_out, c * k * k)
    xv = x.transpose(1, 0, 2, 3)
    y = batch_major((wmat @ im2col(xv, k)).reshape(c_out, n, h, w))
    g = channel_major(gy).reshape(c_out, -1)
    gw = (g @ im2col(xv, k).T).reshape(wt.shape)
    gx = batch_major(col2im(wmat.T @ g, (c, n, h, w), k))
    return y, gw, gx


def per_sample_conv(x, wt, gy):
    """The layout nflow used before: cols per sample (N, C·k², H·W), a GEMM per sample, tensordot for dW."""
    n, c, h, w = x.shape
    c_out, _, k, _ = wt.shape
    p = k // 2

    def unfold(a):
        apad = np.pad(a, ((0, 0), (0, 0), (p, p), (p, p)))
        out = np.empty((n, c, k, k, h, w), dtype=a.dtype)
        for i in range(k):
            for j in range(k):
                out[:, :, i, j] = apad[:, :, i:i + h, j:j + w]
        return out.reshape(n, c * k * k, h * w)

    wmat = wt.reshape(c_out, c * k * k)
    y = np.matmul(wmat, unfold(x))                                                   # forward
    g = gy.reshape(n, c_out, h * w)
    gw = np.tensordot(g, unfold(x), axes=([0, 2], [0, 2]))                           # dW
    gcols = np.matmul(wmat.T, g).reshape(n, c, k, k, h, w)                           # dx
    gpad = np.zeros((n, c, h + 2 * p, w + 2 * p), dtype=x.dtype)
    for i in range(k):
        for j in range(k):
            gpad[:, :, i:i + h, j:j + w] += gcols[:, :, i, j]
    return y.reshape(n, c_out, h, w), gw.reshape(wt.shape), gpad[:, :, p:p + h, p:p + w]


# ---------------------------------------------------------------------------------------------- PyTorch
def time_torch(x, wt, b, gy, repeats, threads):
    """(forward s, backward s, version) of torch.nn.functional.conv2d on the same arrays with ``threads``
    threads (as many as OpenBLAS uses), or None without PyTorch."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    k = wt.shape[-1]
    tx, tw, tb = (torch.from_numpy(a.copy()).requires_grad_(True) for a in (x, wt, b))
    tgy = torch.from_numpy(gy)
    forward = median_time(lambda: torch.nn.functional.conv2d(tx, tw, tb, padding=k // 2), repeats, clock=CLOCK)
    samples = []
    for _ in range(repeats + 1):
        tx.grad = tw.grad = tb.grad = None
        y = torch.nn.functional.conv2d(tx, tw, tb, padding=k // 2)
        start = CLOCK()
        y.backward(tgy)
        samples.append(CLOCK() - start)
    return forward, float(np.median(samples[1:])), torch.__version__


# ---------------------------------------------------------------------------------------------- main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N=8 and fewer repeats (a smoke run, seconds)")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch reference")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall time (default) or this process's CPU time, summed over its threads")
    args = parser.parse_args(argv)
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    sizes = dict(GLOW, n=8) if args.quick else dict(GLOW)
    repeats = 3 if args.quick else 7

    machine = describe()
    rate = gemm_gflops(1024 if args.quick else 2048, repeats, clock=CLOCK)
    print(f"{machine['cpu']} (family/model {machine['cpu family/model']}), {machine['logical cores']} cores, "
          f"numpy {machine['numpy']}, OpenBLAS core {machine['OpenBLAS core type at run time']} "
          f"(OPENBLAS_CORETYPE={machine['$OPENBLAS_CORETYPE']}), {machine['OpenBLAS threads']} BLAS threads, "
          f"load average {machine['load average (1 min) at start']}")
    print(f"Clock: {'CPU time of this process (core-seconds)' if args.clock == 'cpu' else 'wall time'}. "
          f"GEMM rate measured now: {rate:.1f} GFLOP/s (float32, median of {repeats}); "
          f"conv: N={sizes['n']}, {sizes['h']}x{sizes['w']}, float32\n")

    rows, piece_tables = [], []
    for label, c_in, c_out, k in CASES:
        x, wt, b, gy = make_inputs(sizes["n"], c_in, c_out, sizes["h"], sizes["w"], k)
        references = [("first layout (GEMM per sample, tensordot dW)", per_sample_conv)]
        if unfolds_output(c_in, c_out, k, backward_follows=True):
            references.append(("input side unfolded (channel-major)", input_side_conv))
        # correctness before timing: nflow and every reference layout agree on y, dW and dx
        tx, tw = nflow.Tensor(x, requires_grad=True), nflow.Tensor(wt, requires_grad=True)
        y = F.conv2d(tx, tw)
        y.backward(gy)
        for _, reference in references:
            for got, want in zip((y.data, tw.grad, tx.grad), reference(x, wt, gy)):
                np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-3 * float(np.abs(want).max()))

        flops = conv_flops(sizes["n"], c_in, c_out, sizes["h"], sizes["w"], k)
        roof_f, roof_b = flops / rate / 1e9, 2 * flops / rate / 1e9
        roof = roof_f + roof_b

        def row(first, what, seconds, roofline, work, bold=False):
            mark = "**" if bold else ""
            return [first, f"{mark}{what}{mark}", f"{mark}{seconds * 1e3:.1f}{mark}", f"{roofline * 1e3:.1f}",
                    f"{mark}{seconds / roofline:.2f}×{mark}", f"{work / seconds / 1e9:.0f}"]

        fwd, bwd = time_nflow(x, wt, b, gy, repeats)
        side = "output" if unfolds_output(c_in, c_out, k, backward_follows=True) else "input"
        rows.append(row(f"{label} ({3 * flops / 1e9:.2f} GFLOP fwd+bwd)", f"nflow conv2d ({side} side), forward",
                        fwd, roof_f, flops))
        rows.append(row("", "nflow conv2d, backward", bwd, roof_b, 2 * flops))
        rows.append(row("", "nflow conv2d, forward + backward", fwd + bwd, roof, 3 * flops, bold=True))
        fwd, bwd = time_nflow(x, wt, b, gy, repeats, layout="CNHW")
        rows.append(row("", "nflow conv2d, layout CNHW (Glow's nets), fwd + bwd", fwd + bwd, roof, 3 * flops,
                        bold=True))
        for name, reference in references:
            seconds = median_time(lambda: reference(x, wt, gy), repeats, clock=CLOCK)
            rows.append(row("", f"{name}, fwd + bwd", seconds, roof, 3 * flops))
        if not args.no_torch:
            threads = machine["OpenBLAS threads"]
            ref = time_torch(x, wt, b, gy, repeats, threads if isinstance(threads, int) else os.cpu_count())
            if ref is not None:
                tf, tb_, version = ref
                rows.append(row("", f"PyTorch {version} conv2d, fwd + bwd", tf + tb_, roof, 3 * flops))
        pieces = time_pieces(x, wt, gy, repeats)
        total = sum(ms for _, ms in pieces)
        piece_tables.append((label, [[name, f"{ms:.1f}", f"{100 * ms / total:.0f}%"] for name, ms in pieces]
                             + [["sum of pieces", f"{total:.1f}", ""]]))

    print(markdown_table(["layer", "what", "time (ms)", "roofline (ms)", "time / roofline", "GFLOP/s"], rows))
    for label, table in piece_tables:
        print(f"\nnflow conv2d {label}, its pieces timed alone (median of {repeats}):\n")
        print(markdown_table(["piece", "ms", "share"], table))


if __name__ == "__main__":
    main()
