"""Issue 11: what ``nflow.testing.check_flow`` costs per layer at its default ``max_examples``.

One check per row, in float64 and in float32 (where central differences run on a float64 twin), on every CPU
backend (numpy, numba: the backends property compares them). Each row is one call, wall-clock, after one warm-up
call of the same row (Numba's compilation and hypothesis's start-up out of the figure); the report's examples,
points moved off a kink and rejected examples are printed beside it. The first column is what a user waits for
when they check one layer of that kind.

    python -m benchmarks.kit_runtime [--max-examples N]
"""
import argparse
import os
import time

import numpy as np

import nflow
from nflow.flows import (MLP, ActNorm, AdditiveCoupling, AffineCoupling, FlowSequence, GlowNet, InvConv1x1,
                         Reverse, Split, Squeeze)
from nflow.models import NICE, Glow, RealNVP
from nflow.testing import check_flow
from nflow.testing.check import DEFAULT_MAX_EXAMPLES

from benchmarks.machine import describe

HIDDEN = 4
REAL, UNIT = (-2.0, 2.0), (0.0, 1.0)


def _glow_step(dtype):
    return FlowSequence([Squeeze(), ActNorm(8, dtype=dtype), InvConv1x1(8, dtype=dtype),
                         AffineCoupling(8, GlowNet(4, 8, HIDDEN, dtype=dtype), dtype=dtype), Reverse(8),
                         Split(8, dtype=dtype)])


# name -> (builder(dtype), per-sample shape or None for a model's own, (low, high))
ROWS = {
    "AdditiveCoupling (vector, 4)": (lambda d: AdditiveCoupling(4, MLP(2, 2, HIDDEN, 2, dtype=d)), (4,), REAL),
    "AffineCoupling (image, 3x2x2)": (lambda d: AffineCoupling(3, GlowNet(1, 4, HIDDEN, dtype=d), dtype=d),
                                      (3, 2, 2), REAL),
    "ActNorm (image, 3x2x2)": (lambda d: ActNorm(3, dtype=d), (3, 2, 2), REAL),
    "InvConv1x1 LU (3x2x2)": (lambda d: InvConv1x1(3, lu=True, dtype=d), (3, 2, 2), REAL),
    "Glow step (2x2x2)": (_glow_step, (2, 2, 2), REAL),
    "NICE (4)": (lambda d: NICE((4,), couplings=4, hidden=8, depth=2, dtype=d), None, UNIT),
    "RealNVP (vector, 2)": (lambda d: RealNVP((2,), hidden=8, couplings=4, dtype=d), None, REAL),
    "RealNVP (image, 1x4x4)": (lambda d: RealNVP((1, 4, 4), scales=2, hidden=4, dtype=d), None, UNIT),
    "Glow (2x4x4, L=2, K=2)": (lambda d: Glow((2, 4, 4), levels=2, steps=2, hidden=4, dtype=d), None, UNIT),
}


def run_row(build, shape, low, high, dtype, max_examples):
    nflow.seed(0)
    layer = build(dtype)
    shape = shape if shape is not None else layer.input_shape
    start = time.perf_counter()
    report = check_flow(layer, shape, low=low, high=high, dtype=dtype, max_examples=max_examples, seed=0)
    return time.perf_counter() - start, report


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=DEFAULT_MAX_EXAMPLES)
    args = parser.parse_args()
    machine = describe()
    print(f"CPU: {machine['cpu']} ({machine['SIMD']}), {machine['logical cores']} cores; load before: "
          f"{machine['load average (1 min) at start']}; OpenBLAS threads {machine['OpenBLAS threads']}; "
          f"max_examples={args.max_examples}")
    print(f"| {'layer':32s} | float64 s | float32 s | examples (64/32) | moved | rejected |")
    print(f"|{'-' * 34}|-----------|-----------|------------------|-------|----------|")
    for name, (build, shape, (low, high)) in ROWS.items():
        cells = []
        for dtype in (np.float64, np.float32):
            run_row(build, shape, low, high, dtype, args.max_examples)     # warm-up: compilation, start-up
            cells.append(run_row(build, shape, low, high, dtype, args.max_examples))
        (t64, r64), (t32, r32) = cells
        print(f"| {name:32s} | {t64:9.2f} | {t32:9.2f} | {r64.examples:7d} / {r32.examples:<6d} | "
              f"{r64.moved + r32.moved:5d} | {r64.rejected + r32.rejected:8d} |", flush=True)
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
