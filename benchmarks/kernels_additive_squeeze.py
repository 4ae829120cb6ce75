"""The additive-coupling and squeeze Numba kernels against their NumPy twins and this machine's bandwidth.

    python -m benchmarks.kernels_additive_squeeze [--quick] [--dtype float32|float64]

Same method as ``benchmarks/kernels.py`` (whose helpers this imports: the sizes, the alternating median timer
and the STREAM triad): at N=64, C=16, 14×14 (Glow's first level on 28×28 MNIST after a squeeze) and N=64, C=64,
28×28 (12.8 MB per float32 array, past the L2), the median time of the NumPy twin and of the Numba kernel (built
serial), timed alternately round by round after one warm-up call each, so a load change on this shared machine
hits both; and the kernel's achieved bandwidth = bytes its arrays must move (each input read once, each output
written once) ÷ time, as a fraction of a triad measured in the same run.

The additive coupling transforms the second half of the channels (parity 0: start = C/2, C_b = C/2), so a
forward reads x (one array, ``a`` bytes) and the shift (a/2) and writes y (a): 2.5·a; the backward reads the
gradient's block (a/2) and writes the shift's gradient (a/2): a (the full-size gradient is passed on uncopied).
A squeeze reads and writes one array each way: 2·a.

A second table times the fused join against what ``AdditiveCoupling.forward`` did before the kernel: x_b + m
(a temporary), then a concatenation with x_a (``np.concatenate``): the copy that fusing the join removes.

Caveat, as in ``benchmarks/kernels.py``: at the small size the working set (0.8 MB arrays) fits in the L3,
so a kernel can beat the DRAM triad there; the larger size is the honest bandwidth test.
"""
import argparse
import os

import numpy as np

from benchmarks.kernels import SIZES, TRIAD_SOURCE, _median_alternating, triad_gbps
from nflow.kernels.cpu import additive_coupling as cpu_additive
from nflow.kernels.cpu import squeeze as cpu_squeeze
from nflow.kernels.reference import additive_coupling as ref_additive
from nflow.kernels.reference import squeeze as ref_squeeze


def cases(shape, dtype, rng):
    """(name, call taking the module, (kernel module, twin module), bytes moved) for every kernel function."""
    n, c, h, w = shape
    start, width = c // 2, c - c // 2  # parity 0: the second channel block is transformed
    x, g = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
    shift = rng.standard_normal((n, width, h, w)).astype(dtype)
    y_squeezed = rng.standard_normal((n, 4 * c, h // 2, w // 2)).astype(dtype)
    a = x.nbytes                       # bytes of one full-size array
    block = shift.nbytes               # bytes of the transformed block
    pair = (cpu_additive, ref_additive)
    return [
        ("additive forward", lambda m: m.forward(x, shift, start), pair, 2 * a + block),
        ("additive inverse", lambda m: m.inverse(x, shift, start), pair, 2 * a + block),
        ("additive forward_backward", lambda m: m.forward_backward(g, start, width), pair, 2 * block),
        ("additive inverse_backward", lambda m: m.inverse_backward(g, start, width), pair, 2 * block),
        ("squeeze forward", lambda m: m.forward(x), (cpu_squeeze, ref_squeeze), 2 * a),
        ("squeeze inverse (unsqueeze)", lambda m: m.inverse(y_squeezed), (cpu_squeeze, ref_squeeze), 2 * a),
    ], (x, shift, start)


def _old_join(x, shift, start):
    """The join as the layer did it before the kernel: split, add, concatenate (parity 0)."""
    return np.concatenate([x[:, :start], x[:, start:] + shift], axis=1)


def run(quick=False, dtype=np.float32):
    repeats = 5 if quick else 15
    triad = triad_gbps(1 << 23 if quick else 1 << 25, 5 if quick else 9)
    rng = np.random.default_rng(0)
    rows, joins = [], []
    sizes = dict(list(SIZES.items())[:1]) if quick else SIZES
    for size_name, shape in sizes.items():
        entries, (x, shift, start) = cases(shape, dtype, rng)
        for name, call, (kernel_mod, twin_mod), nbytes in entries:
            # correctness before timing: both families are exact copies/additions, so equality is exact
            for got, want in zip(_as_tuple(call(kernel_mod)), _as_tuple(call(twin_mod))):
                np.testing.assert_array_equal(got, want, err_msg=f"{name} at {size_name}")
            twin, kernel = _median_alternating([lambda: call(twin_mod), lambda: call(kernel_mod)], repeats)
            gbps = nbytes / kernel / 1e9
            rows.append(dict(size=size_name, kernel=name, twin_ms=twin * 1e3, numba_ms=kernel * 1e3,
                             speedup=twin / kernel, mbytes=nbytes / 1e6, gbps=gbps, of_triad=gbps / triad))
        np.testing.assert_array_equal(_old_join(x, shift, start), cpu_additive.forward(x, shift, start))
        old, fused = _median_alternating([lambda: _old_join(x, shift, start),
                                          lambda: cpu_additive.forward(x, shift, start)], repeats)
        joins.append(dict(size=size_name, old_ms=old * 1e3, fused_ms=fused * 1e3))
    return dict(triad_gbps=triad, dtype=np.dtype(dtype).name, repeats=repeats, rows=rows, joins=joins)


def _as_tuple(result):
    return result if isinstance(result, tuple) else (result,)


def markdown(result):
    lines = [f"STREAM triad ({TRIAD_SOURCE}): **{result['triad_gbps']:.1f} GB/s**; dtype {result['dtype']}; "
             f"median of {result['repeats']} alternating rounds after one warm-up call each.", "",
             "| size | kernel | NumPy twin ms | Numba ms | speed-up | MB moved | GB/s | % of triad |",
             "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['size']} | {r['kernel']} | {r['twin_ms']:.3f} | {r['numba_ms']:.3f} | "
                     f"{r['speedup']:.1f}x | {r['mbytes']:.1f} | {r['gbps']:.1f} | {100 * r['of_triad']:.0f}% |")
    lines += ["", "Additive coupling forward: the fused join against the former split + add + concatenate:", "",
              "| size | split/add/concat ms | fused kernel ms | speed-up |", "|---|---|---|---|"]
    lines += [f"| {r['size']} | {r['old_ms']:.3f} | {r['fused_ms']:.3f} | {r['old_ms'] / r['fused_ms']:.1f}x |"
              for r in result["joins"]]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the small size only, fewer repeats")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = parser.parse_args(argv)
    env = {k: os.environ.get(k, "(unset)") for k in ("OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS", "OMP_WAIT_POLICY")}
    print(f"env: {env}; load average at start: {os.getloadavg()[0]:.2f}")
    print(markdown(run(args.quick, np.dtype(args.dtype).type)))
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
