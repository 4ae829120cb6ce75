"""What the tensor core costs per op: a 50-op element-wise chain, forward + backward, nflow vs plain NumPy.

On a 16×16 float32 tensor the arithmetic of one op is a few hundred nanoseconds, so the time nflow spends
is almost all bookkeeping: a Function object, a Tensor per output, weak references, the generation heap in
backward, the shape/dtype check of every gradient. The NumPy twin does the same arithmetic with the same
temporaries (forward keeps what backward needs; backward is written by hand), so

    overhead per op = (t_nflow - t_numpy) / (ops in forward and backward)

The chain cycles through  y·0.9,  y + 0.1,  tanh(y),  exp(y)  (values stay in [0.3, 3]), 50 ops, then a sum.

    python -m benchmarks.core_overhead [--quick] [--clock cpu]

``--clock cpu`` times with this process's CPU time (steadier when other work shares the machine).
"""
import argparse
import time

import numpy as np

import nflow
import nflow.functional as F
from benchmarks.machine import describe, markdown_table

N_OPS = 50
SHAPE = (16, 16)


def nflow_forward(x):
    """The chain and its sum through nflow (a graph is recorded unless under ``nflow.no_grad()``)."""
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
    return F.sum(y)


def nflow_forward_no_grad(x):
    with nflow.no_grad():
        return nflow_forward(x)


def nflow_step(x):
    """Forward and backward through nflow; returns d(sum y)/dx."""
    x.grad = None
    nflow_forward(x).backward()
    return x.grad


def numpy_forward(x):
    """The chain in NumPy, keeping what backward needs: (sum, the kept arrays)."""
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
    return y.sum(), saved


def numpy_step(x):
    """The same arithmetic in NumPy: forward keeping what backward needs, then the hand-written backward."""
    scale = np.float32(0.9)
    _, saved = numpy_forward(x)
    g = np.ones_like(x)
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


def time_per_call(fn, arg, calls, repeats, warmup=20, clock=time.perf_counter):
    for _ in range(warmup):
        fn(arg)
    samples = []
    for _ in range(repeats):
        start = clock()
        for _ in range(calls):
            fn(arg)
        samples.append((clock() - start) / calls)
    return float(np.median(samples))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall time (default) or this process's CPU time")
    args = parser.parse_args(argv)
    calls, repeats = (20, 5) if args.quick else (100, 21)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter

    x_np = np.random.default_rng(0).uniform(-1, 1, SHAPE).astype(np.float32)
    x = nflow.Tensor(x_np.copy(), requires_grad=True)
    # correctness first: both give the same gradient
    np.testing.assert_allclose(nflow_step(x), numpy_step(x_np), rtol=1e-5)

    t_nflow = time_per_call(nflow_step, x, calls, repeats, clock=clock)
    t_numpy = time_per_call(numpy_step, x_np, calls, repeats, clock=clock)
    f_graph = time_per_call(nflow_forward, x, calls, repeats, clock=clock)
    f_plain = time_per_call(nflow_forward_no_grad, x, calls, repeats, clock=clock)
    f_numpy = time_per_call(numpy_forward, x_np, calls, repeats, clock=clock)
    # forward ops + the sum; backward: one node per forward op (add included) + the sum's
    ops = 2 * (N_OPS + 1)
    machine = describe()
    print(f"{machine['cpu']}, {machine['logical cores']} cores, numpy {machine['numpy']}, "
          f"load average {machine['load average (1 min) at start']}; {args.clock} clock, median of {repeats} × {calls} calls\n")
    print(markdown_table(
        ["what", "nflow", "NumPy", "ratio"],
        [[f"{N_OPS}-op chain on {SHAPE[0]}x{SHAPE[1]} float32, forward + backward (µs)",
          f"{t_nflow * 1e6:.0f}", f"{t_numpy * 1e6:.0f}", f"{t_nflow / t_numpy:.1f}×"],
         [f"per op ({ops} forward and backward steps, µs)", f"{t_nflow / ops * 1e6:.2f}", f"{t_numpy / ops * 1e6:.2f}", ""],
         ["overhead per op, nflow − NumPy (µs)", f"{(t_nflow - t_numpy) / ops * 1e6:.2f}", "", ""],
         [f"forward only, recording the graph ({N_OPS + 1} ops, µs)", f"{f_graph * 1e6:.0f}", f"{f_numpy * 1e6:.0f}",
          f"{f_graph / f_numpy:.1f}×"],
         [f"forward only, under no_grad() ({N_OPS + 1} ops, µs)", f"{f_plain * 1e6:.0f}", f"{f_numpy * 1e6:.0f}",
          f"{f_plain / f_numpy:.1f}×"],
         ["backward only, by difference (µs)", f"{(t_nflow - f_graph) * 1e6:.0f}", f"{(t_numpy - f_numpy) * 1e6:.0f}",
          f"{(t_nflow - f_graph) / (t_numpy - f_numpy):.1f}×"]]))


if __name__ == "__main__":
    main()
