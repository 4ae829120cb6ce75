"""Glow's 1x1 convolution kernels (families ``invconv`` and ``lu``): the Numba wrappers against the NumPy twins.

    python -m benchmarks.kernels_invconv_lu [--quick] [--dtype float32|float64]

invconv forward and backward at Glow's shapes after its squeezes (N=64: C=4 and 16 at 14×14, C=8 and 48 at
7×7) and a larger C=64 at 28×28: median time of the twin (one batched ``np.matmul`` per product) and of the
Numba wrapper (loops up to ``MAP_LOOP_MAX_CHANNELS`` / ``WEIGHT_LOOP_MAX_CHANNELS`` channels, ``np.matmul``
above: kernels/cpu/invconv.py), then for the same work the plain loops forced on (the measurement behind those
thresholds). Achieved bandwidth = bytes the arrays must move (forward: x read, y written; backward: x and gy
read, gx written; W negligible) ÷ time, against a STREAM triad measured in the same run
(``benchmarks.kernels.triad_gbps``); GFLOP/s counts 2·N·C²·H·W forward and twice that backward.
LU weight and weight_backward at C = 16 and 48: times only (O(C³) on C×C matrices, once per step).

Timing as in benchmarks/kernels.py (its ``_median_alternating``): one warm-up call each (Numba compiles
there: compile time is not in the medians), then the contenders alternate round by round so a load change
on this shared machine hits all of them.
"""
import argparse
import os

import numpy as np

from benchmarks.kernels import TRIAD_SOURCE, _median_alternating, triad_gbps
from nflow.kernels.cpu import invconv as cpu_invconv
from nflow.kernels.cpu import lu as cpu_lu
from nflow.kernels.reference import invconv as ref_invconv
from nflow.kernels.reference import lu as ref_lu

SHAPES = {"C=4 14x14": (64, 4, 14, 14), "C=16 14x14": (64, 16, 14, 14), "C=8 7x7": (64, 8, 7, 7),
          "C=48 7x7": (64, 48, 7, 7), "C=64 28x28": (64, 64, 28, 28)}
LU_CHANNELS = (16, 48)


def _loops_forward(x, w):
    """The Numba loops whatever C (bypassing the wrapper's threshold)."""
    n, c, h, wd = x.shape
    y = np.empty((n, c, h * wd), dtype=x.dtype)
    cpu_invconv._map(x.reshape(n, c, h * wd), w, y)
    return y


def _loops_backward(x, w, gy):
    n, c, h, wd = x.shape
    xr, g = x.reshape(n, c, h * wd), gy.reshape(n, c, h * wd)
    gx, gw = np.empty_like(xr), np.empty((c, c), dtype=x.dtype)
    cpu_invconv._map(g, np.ascontiguousarray(w.T), gx)
    cpu_invconv._weight_grad(xr, g, gw)
    return gx, gw


def run(quick=False, dtype=np.float32):
    repeats = 7 if quick else 21
    triad = triad_gbps(1 << 23 if quick else 1 << 25, 5 if quick else 9)
    rng = np.random.default_rng(0)
    rows = []
    for name, shape in SHAPES.items():
        n, c, h, wd = shape
        x, gy = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
        w = rng.standard_normal((c, c)).astype(dtype)
        a = x.nbytes
        flops = 2 * n * c * c * h * wd
        for what, calls, nbytes, work in (
                ("forward", [lambda: ref_invconv.forward(x, w), lambda: cpu_invconv.forward(x, w),
                             lambda: _loops_forward(x, w)], 2 * a, flops),
                ("backward", [lambda: ref_invconv.backward(x, w, gy), lambda: cpu_invconv.backward(x, w, gy),
                              lambda: _loops_backward(x, w, gy)], 3 * a, 2 * flops)):
            twin, kernel, loops = _median_alternating(calls, repeats)
            rows.append(dict(shape=name, kernel=f"invconv {what}", twin_ms=twin * 1e3, numba_ms=kernel * 1e3,
                             loops_ms=loops * 1e3, mbytes=nbytes / 1e6, gbps=nbytes / kernel / 1e9,
                             of_triad=nbytes / kernel / 1e9 / triad, gflops=work / kernel / 1e9))
    lu_rows = []
    for c in LU_CHANNELS:
        perm = np.eye(c)[rng.permutation(c)].astype(dtype)
        lower, upper, gw = (rng.standard_normal((c, c)).astype(dtype) for _ in range(3))
        sign_s, log_s = np.sign(rng.standard_normal(c)).astype(dtype), (0.1 * rng.standard_normal(c)).astype(dtype)
        args = (perm, lower, upper, sign_s, log_s)
        for what, calls in (("weight", [lambda: ref_lu.weight(*args), lambda: cpu_lu.weight(*args)]),
                            ("weight_backward", [lambda: ref_lu.weight_backward(*args, gw),
                                                 lambda: cpu_lu.weight_backward(*args, gw)])):
            twin, kernel = _median_alternating(calls, repeats)
            lu_rows.append(dict(c=c, kernel=f"lu {what}", twin_us=twin * 1e6, numba_us=kernel * 1e6))
    return dict(triad_gbps=triad, dtype=np.dtype(dtype).name, repeats=repeats, rows=rows, lu_rows=lu_rows)


def markdown(result):
    lines = [f"STREAM triad ({TRIAD_SOURCE}): **{result['triad_gbps']:.1f} GB/s**; dtype {result['dtype']}; N=64; "
             f"median of {result['repeats']} alternating rounds; thresholds: map loops up to C="
             f"{cpu_invconv.MAP_LOOP_MAX_CHANNELS}, dW loops up to C={cpu_invconv.WEIGHT_LOOP_MAX_CHANNELS}.", "",
             "| shape | kernel | NumPy twin ms | Numba wrapper ms | loops forced ms | MB moved | GB/s | % of triad "
             "| GFLOP/s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['shape']} | {r['kernel']} | {r['twin_ms']:.3f} | {r['numba_ms']:.3f} | "
                     f"{r['loops_ms']:.3f} | {r['mbytes']:.1f} | {r['gbps']:.1f} | {100 * r['of_triad']:.0f}% | "
                     f"{r['gflops']:.1f} |")
    lines += ["", "| C | kernel | NumPy twin µs | Numba µs |", "|---|---|---|---|"]
    lines += [f"| {r['c']} | {r['kernel']} | {r['twin_us']:.1f} | {r['numba_us']:.1f} |" for r in result["lu_rows"]]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, a smaller triad")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = parser.parse_args(argv)
    env = {k: os.environ.get(k, "(unset)") for k in ("OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS", "OMP_NUM_THREADS")}
    print(f"env: {env}; load average at start: {os.getloadavg()[0]:.2f}")
    print(markdown(run(args.quick, np.dtype(args.dtype).type)))
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
