"""nflow's own convolution kernels (``kernels/cpu/conv_jit.py``: LLVM-IR micro-kernels on nflow's own threads)
against the BLAS paths they replace (``kernels/cpu/conv.py``'s shifted GEMMs or the im2col twin, whichever that
module's rule picks without them) on RealNVP's convolution shapes, float32, medians after warm-up.

    python -m benchmarks.own_conv [--repeats 7] [--batch 64] [--torch]

Per shape: forward, dx, dW and a training step's forward + backward, in ms, own / BLAS; the GFLOP/s the own
kernels reach on the step (2·N·H·W·C_in·C_out·k² per product, three products); and "own after BLAS": the own step
timed right after one threaded BLAS product (a 384³ matmul), which leaves OpenBLAS's worker spinning on the second
core for ~0.1 s — what the own threads meet in a network that mixes them with BLAS, and why ``kernels/cpu/conv.py``
sends a network's convolutions to them only where it can send all of them. ``--torch`` adds PyTorch's conv2d on the
same arrays (NCHW): forward, and forward + backward. Threads: ``NUMBA_NUM_THREADS`` for the own kernels (the
CPUs this process may use unless set), ``OPENBLAS_NUM_THREADS`` for BLAS, the same count for PyTorch.
"""
import os

import numpy as np

from benchmarks.conv_shifted import conv_benchmark_parser, measure_torch, median_ms
from benchmarks.machine import describe
from nflow.kernels.cpu import conv as cpu_conv
from nflow.kernels.cpu import conv_jit, jit, threads
from nflow.kernels.reference import conv as twin

# (C_in, C_out, H): RealNVP's convolutions on MNIST (64 hidden channels; 1 or 2 channels in, 2 or 4 out)
SHAPES = ((64, 64, 28), (64, 64, 14), (1, 64, 28), (64, 2, 28), (2, 64, 14), (64, 4, 14))
SPIN_SIZE = 384  # the threaded BLAS product run before "own after BLAS"


def blas_path(c_in, c_out):
    """What kernels/cpu/conv.py runs without its own kernels: (forward, backward) functions."""
    if cpu_conv.shifted_pays(c_in, c_out, 3):
        return cpu_conv.shifted_forward, cpu_conv.shifted_backward
    return (lambda x, w: twin.forward(x, w, backward_follows=True)), twin.backward


def own_path():
    return (lambda x, w: conv_jit.forward(x, w, backward_follows=True)), conv_jit.backward


def measure(c_in, c_out, h, batch, repeats, rng):
    x = rng.standard_normal((c_in, batch, h, h)).astype(np.float32)
    w = (0.1 * rng.standard_normal((c_out, c_in, 3, 3))).astype(np.float32)
    gy = rng.standard_normal((c_out, batch, h, h)).astype(np.float32)
    spin = np.ones((SPIN_SIZE, SPIN_SIZE), dtype=np.float32)
    times = {}
    for side, (forward, backward) in (("own", own_path()), ("blas", blas_path(c_in, c_out))):
        times[side + " forward"] = median_ms(lambda: forward(x, w), repeats)
        times[side + " dx"] = median_ms(lambda: backward(x, w, gy, need_w=False), repeats)
        times[side + " dW"] = median_ms(lambda: backward(x, w, gy, need_x=False), repeats)
        times[side + " step"] = median_ms(lambda: (forward(x, w), backward(x, w, gy)), repeats)
    forward, backward = own_path()
    spin_ms = median_ms(lambda: spin @ spin, repeats)
    times["own after BLAS"] = median_ms(lambda: (spin @ spin, forward(x, w), backward(x, w, gy)), repeats) - spin_ms
    return x, w, gy, times


def main(argv=None):
    args = conv_benchmark_parser(__doc__.splitlines()[0]).parse_args(argv)
    if not jit.AVAILABLE:
        print(f"own_conv: nothing to measure, {jit.UNAVAILABLE_REASON}")
        return
    rng = np.random.default_rng(0)
    machine = describe()
    print(f"{machine['cpu']} ({machine['SIMD']}); own threads {threads.THREADS}, OpenBLAS "
          f"{machine['OpenBLAS core type at run time']}, {machine['OpenBLAS threads']} threads; load "
          f"{os.getloadavg()[0]:.2f}; batch {args.batch}; ms, median of {args.repeats}")
    columns = ("forward", "dx", "dW", "step")
    torch_header = " | torch forward / forward + backward" if args.torch else ""
    print("| C_in → C_out, H×W | " + " | ".join(f"{c}: own / BLAS" for c in columns)
          + f" | step ratio | own step GFLOP/s | own after BLAS{torch_header} |")
    print("|---" * (len(columns) + 4 + bool(args.torch)) + "|")
    for c_in, c_out, h in SHAPES:
        x, w, gy, t = measure(c_in, c_out, h, args.batch, args.repeats, rng)
        cells = [f"{t['own ' + c]:.2f} / {t['blas ' + c]:.2f}" for c in columns]
        flops = 3 * 2 * args.batch * h * h * c_in * c_out * 9
        torch_cell = ""
        if args.torch:
            forward_ms, step_ms = measure_torch(x, w, gy, args.repeats)
            torch_cell = f" | {forward_ms:.2f} / {step_ms:.2f}"
        print(f"| {c_in} → {c_out}, {h}×{h} | " + " | ".join(cells) + f" | {t['own step'] / t['blas step']:.2f} | "
              f"{flops / t['own step'] / 1e6:.0f} | {t['own after BLAS']:.2f}{torch_cell} |")


if __name__ == "__main__":
    main()
