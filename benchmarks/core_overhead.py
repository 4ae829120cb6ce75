"""What the tensor core costs per op: a 50-op element-wise chain, forward + backward, nflow vs plain NumPy.

On a 16×16 float32 tensor the arithmetic of one op is a few hundred nanoseconds, so the time nflow spends
is almost all bookkeeping: a Function object, a Tensor per output, weak references, the generation heap in
backward, the shape/dtype check of every gradient. The NumPy twin does the same arithmetic with the same
temporaries (forward keeps what backward needs; backward is written by hand), so

    overhead per op = (t_nflow - t_numpy) / (ops in forward and backward)

The chain cycles through  y·0.9,  y + 0.1,  tanh(y),  exp(y)  (values stay in [0.3, 3]), 50 ops, then a sum.

    python -m benchmarks.core_overhead [--quick]
"""
import argparse
import time

import numpy as np

import nflow
import nflow.functional as F
from benchmarks.machine import describe, markdown_table

N_OPS = 50
SHAPE = (16, 16)


def nflow_step(x):
    """Forward and backward through nflow; returns d(sum y)/dx."""
    x.grad = None
    y = x
    for i in range(N_OPS):
        kind = i % 4
        if kind == 0:
            y = y * 0.9
        elif kind == 1:
            y = y + 0.1
        elif kind == 2:
            y = F.tanh(y)
        else:
            y = F.exp(y)
    F.sum(y).backward()
    return x.grad


def numpy_step(x):
    """The same arithmetic in NumPy: forward keeping what backward needs, then the hand-written backward."""
    scale, shift = np.float32(0.9), np.float32(0.1)
    saved = []
    y = x
    for i in range(N_OPS):
        kind = i % 4
        if kind == 0:
            y = y * scale
        elif kind == 1:
            y = y + shift
        elif kind == 2:
            y = np.tanh(y)
            saved.append(y)
        else:
            y = np.exp(y)
            saved.append(y)
    y.sum()
    g = np.ones_like(y)
    for i in reversed(range(N_OPS)):
        kind = i % 4
        if kind == 0:
            g = g * scale
        elif kind == 2:
            t = saved.pop()
            g = g * (1 - t * t)
        elif kind == 3:
            g = g * saved.pop()
        # kind 1 (add): the gradient passes through unchanged
    return g


def time_per_call(fn, arg, calls, repeats, warmup=20):
    for _ in range(warmup):
        fn(arg)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn(arg)
        samples.append((time.perf_counter() - start) / calls)
    return float(np.median(samples))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args(argv)
    calls, repeats = (20, 5) if args.quick else (100, 21)

    x_np = np.random.default_rng(0).uniform(-1, 1, SHAPE).astype(np.float32)
    x = nflow.Tensor(x_np.copy(), requires_grad=True)
    # correctness first: both give the same gradient
    np.testing.assert_allclose(nflow_step(x), numpy_step(x_np), rtol=1e-5)

    t_nflow = time_per_call(nflow_step, x, calls, repeats)
    t_numpy = time_per_call(numpy_step, x_np, calls, repeats)
    # forward ops + the sum; backward: one node per forward op (add included) + the sum's
    ops = 2 * (N_OPS + 1)
    machine = describe()
    print(f"{machine['cpu']}, {machine['logical cores']} cores, numpy {machine['numpy']}, "
          f"load average {machine['load average (1 min) at start']}; median of {repeats} × {calls} calls\n")
    print(markdown_table(
        ["what", "nflow", "NumPy", "ratio"],
        [[f"{N_OPS}-op chain on {SHAPE[0]}x{SHAPE[1]} float32, forward + backward (µs)",
          f"{t_nflow * 1e6:.0f}", f"{t_numpy * 1e6:.0f}", f"{t_nflow / t_numpy:.1f}×"],
         [f"per op ({ops} forward and backward steps, µs)", f"{t_nflow / ops * 1e6:.2f}", f"{t_numpy / ops * 1e6:.2f}", ""],
         ["overhead per op, nflow − NumPy (µs)", f"{(t_nflow - t_numpy) / ops * 1e6:.2f}", "", ""]]))


if __name__ == "__main__":
    main()
