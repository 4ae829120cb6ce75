"""Issue 4, profile follow-up: a 3×3 convolution with many input and few output channels, unfolded on its
small side. The measurement behind ``nflow/ops/conv.py``'s rule (adopted there: ``unfolds_output``).

    python -m benchmarks.conv_small_side [--quick]

Glow's ZeroConv (the last layer of every coupling network) maps C_in = 256 hidden channels to C_out = 4 (level 1)
or 16 (level 2) with a 3×3 kernel. Unfolding the *input* (im2col, the engine's first rule) gives: a (9·C_in, N·H·W)
buffer, 9 × the input, 116 MB at N=64, 14×14, written in forward and again in backward (dW), plus the
(9·C_in, N·H·W) input gradient before col2im. Unfolding the *output* side instead touches 9·C_out rows:

    forward:  Z = W' X             W' = flip(W) as a (9·C_out, C_in) matrix, X = x as (C_in, N·H·W)
              y = col2im(Z)        the 9 shifted copies of Z summed: a (9·C_out, N·H·W) buffer, 64× smaller
    backward: G = im2col(gy)       (9·C_out, N·H·W)
              dx = W'ᵀ G           one GEMM, no col2im of a 9·C_in buffer
              dW' = G Xᵀ           -> dW = flip back

flip(W)[o, c, i, j] = W[o, c, k-1-i, k-1-j]: with it, Σ_ij Z_ij shifted by (i - p, j - p) becomes col2im's
"shift by (p - i, p - j)" convention. Same FLOPs as the input-side unfolding; far less memory traffic. The rule
for the engine: unfold the side with fewer channels (input if C_in ≤ C_out, else output).

Both sides are checked against the engine, ``nflow.ops.conv.Conv2d`` (values and all gradients), before
anything is timed.
"""
import argparse
import os
import time

import numpy as np

from nflow.kernels.reference.conv import batch_major, channel_major, col2im, im2col
from nflow.ops.conv import Conv2d

CASES = {"level 1 ZeroConv: 256->4, 14x14": (64, 256, 4, 14), "level 2 ZeroConv: 256->16, 7x7": (64, 256, 16, 7)}


def output_side(x, w, gy):
    """Forward and backward of conv2d(x, w) unfolding the output side; returns (y, dx, dw).

    Layout as in ``nflow/ops/conv.py``: channel-major (C, N·H·W) operands, so every product is one GEMM."""
    n, c_in, h, wd = x.shape
    c_out, _, k, _ = w.shape
    flipped = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(0, 2, 3, 1)).reshape(c_out * k * k, c_in)
    xs = channel_major(x).reshape(c_in, -1)                   # (C_in, N·H·W)
    y = batch_major(col2im(flipped @ xs, (c_out, n, h, wd), k))  # Z: (9·C_out, N·H·W)
    g = im2col(gy.transpose(1, 0, 2, 3), k)                   # (9·C_out, N·H·W)
    dx = batch_major((flipped.T @ g).reshape(c_in, n, h, wd))
    dflipped = g @ xs.T                                       # (9·C_out, C_in)
    dw = dflipped.reshape(c_out, k, k, c_in).transpose(0, 3, 1, 2)[:, :, ::-1, ::-1]
    return y, dx, dw


def input_side(x, w, gy):
    """Forward and backward of conv2d(x, w) unfolding the input side; returns (y, dx, dw)."""
    n, c_in, h, wd = x.shape
    c_out, _, k, _ = w.shape
    wmat = w.reshape(c_out, c_in * k * k)
    cols = im2col(x.transpose(1, 0, 2, 3), k)                 # (9·C_in, N·H·W)
    y = batch_major((wmat @ cols).reshape(c_out, n, h, wd))
    g = channel_major(gy).reshape(c_out, -1)
    dw = (g @ im2col(x.transpose(1, 0, 2, 3), k).T).reshape(w.shape)  # rebuilt, as the engine does
    dx = batch_major(col2im(wmat.T @ g, (c_in, n, h, wd), k))
    return y, dx, dw


def engine(x, w, gy):
    """``nflow.ops.conv.Conv2d`` forward + backward: the reference both sides are checked against."""
    op = Conv2d()
    op.records_graph, op.needs_input_grad = True, (True, True)
    y = op.forward(x, w)
    dx, dw = op.backward(gy)
    return y, dx, dw


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    repeats = 3 if args.quick else 7
    rng = np.random.default_rng(0)
    print(f"env OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', '(unset)')}; "
          f"load average {os.getloadavg()[0]:.2f}; float32; forward + backward (dx, dW); median of {repeats} "
          "alternating rounds\n")
    print("| case | input side ms | output side ms | speed-up |\n|---|---|---|---|")
    for name, (n, c_in, c_out, size) in CASES.items():
        x = rng.standard_normal((n, c_in, size, size)).astype(np.float32)
        w = (0.05 * rng.standard_normal((c_out, c_in, 3, 3))).astype(np.float32)
        gy = rng.standard_normal((n, c_out, size, size)).astype(np.float32)
        ref = engine(x, w, gy)
        for side in (input_side, output_side):
            for a, b, what in zip(ref, side(x, w, gy), ("y", "dx", "dw")):
                np.testing.assert_allclose(b, a, rtol=2e-3, atol=2e-3 * float(np.abs(a).max()),
                                           err_msg=f"{side.__name__}: {what}")
        times = {"input": [], "output": []}
        for _ in range(repeats):
            for label, fn in (("input", input_side), ("output", output_side)):
                start = time.perf_counter()
                fn(x, w, gy)
                times[label].append(time.perf_counter() - start)
        t_in, t_out = (float(np.median(times[k])) for k in ("input", "output"))
        print(f"| {name} | {t_in * 1e3:.1f} | {t_out * 1e3:.1f} | {t_in / t_out:.1f}x |")


if __name__ == "__main__":
    main()
