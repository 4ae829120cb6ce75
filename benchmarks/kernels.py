"""Issue 4: each hand-written Numba kernel against its NumPy twin, and against this machine's memory bandwidth.

    python -m benchmarks.kernels [--quick] [--dtype float32|float64]

For every kernel function (affine coupling in Glow's sigmoid form and RealNVP's exp form, ActNorm, the
Gaussian prior, the bias + ReLU conv epilogue, Adam's update) at two sizes, N=64, C=16, 14×14
(Glow's first level on 28×28 MNIST after a squeeze, as the issue asks) and a larger N=64, C=64, 28×28 (12.8 MB
per float32 array, past the 1 MB L2 of a core): the median time of the NumPy twin and of the Numba kernel
(built serial: ``kernels/cpu/__init__.py``), and the kernel's achieved bandwidth = bytes its arrays must move
(each input read once, each output written once; the per-sample and per-channel vectors are negligible and
not counted) ÷ time. The reference bandwidth is a STREAM triad measured in the same run by
``benchmarks.machine.triad_gbps`` (one fused Numba pass over both cores on 256 MiB arrays; a local copy of the
same loop if that module is missing). Twin and kernel are timed
alternately, round by round, so a load change on this shared machine hits both.

A last table compiles a ``parallel=True`` build of the coupling kernels (same source, ``prange`` over the batch)
and times it against the serial build on all of Numba's threads: the measurement behind ``PARALLEL = False``.

Caveat for the small size: its working set (4-7 arrays of 0.8 MB) fits in the 32 MB L3, so a kernel can beat
the DRAM triad there; the larger size is the honest bandwidth test.
"""
import argparse
import os
import time

import numpy as np

from nflow.kernels.cpu import actnorm as cpu_actnorm
from nflow.kernels.cpu import adam as cpu_adam
from nflow.kernels.cpu import bias_relu as cpu_bias_relu
from nflow.kernels.cpu import affine_coupling as cpu_affine
from nflow.kernels.cpu import gaussian as cpu_gaussian
from nflow.kernels.reference import actnorm as ref_actnorm
from nflow.kernels.reference import adam as ref_adam
from nflow.kernels.reference import affine_coupling as ref_affine
from nflow.kernels.reference import bias_relu as ref_bias_relu
from nflow.kernels.reference import gaussian as ref_gaussian

SIZES = {"N=64 C=16 14x14": (64, 16, 14, 14), "N=64 C=64 28x28": (64, 64, 28, 28)}
COUPLING_TARGET = 0.60  # the target: fused coupling kernels at ≥ 60 % of the triad bandwidth

try:
    from benchmarks.machine import triad_gbps
    TRIAD_SOURCE = "benchmarks.machine.triad_gbps (fused Numba triad, both cores)"
except ImportError:  # the machine module is another engineer's; keep this benchmark runnable without it
    TRIAD_SOURCE = "local triad (benchmarks/kernels.py)"

    def triad_gbps(n=1 << 25, repeats=7, fused=True):
        import numba

        @numba.njit(parallel=True)
        def triad(a, b, c, s):
            for i in numba.prange(a.size):
                a[i] = b[i] + s * c[i]

        a, b, c = np.zeros(n), np.full(n, 1.0), np.full(n, 2.0)
        triad(a[:16], b[:16], c[:16], 3.0)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            triad(a, b, c, 3.0)
            times.append(time.perf_counter() - start)
        return 3 * 8 * n / float(np.median(times)) / 1e9


def cases(shape, dtype, rng):
    """(name, twin call, kernel call, bytes moved) for every kernel function at ``shape``."""
    x, h, t, g = (rng.standard_normal(shape).astype(dtype) for _ in range(4))
    glogdet = rng.standard_normal(shape[0]).astype(dtype)
    bias, log_s = (0.1 * rng.standard_normal(shape[1])).astype(dtype), (0.1 * rng.standard_normal(shape[1])).astype(dtype)
    z = x.copy().reshape(shape[1], -1)  # bias-relu works in place on a (C, N·H·W) matrix: its own copy
    y_relu = np.maximum(z, 0)
    theta, m_adam, v_adam = x.copy(), 0.1 * h, np.abs(0.01 * t)  # Adam updates these in place: their own arrays
    adam_scalars = dict(step_size=1e-3 / 0.1, beta1=0.9, beta2=0.999, eps=1e-8, bias2=1e-3)
    a = x.nbytes  # bytes of one full-size array
    out = []
    for form in ("sigmoid", "exp"):
        out += [
            (f"affine {form} forward", lambda m, f=form: m.forward(x, h, t, f), (cpu_affine, ref_affine), 4 * a),
            (f"affine {form} inverse", lambda m, f=form: m.inverse(x, h, t, f), (cpu_affine, ref_affine), 4 * a),
            (f"affine {form} forward_backward", lambda m, f=form: m.forward_backward(x, h, g, glogdet, f),
             (cpu_affine, ref_affine), 5 * a),
            (f"affine {form} inverse_backward", lambda m, f=form: m.inverse_backward(x, h, t, g, glogdet, f),
             (cpu_affine, ref_affine), 7 * a),
        ]
    out += [
        ("actnorm forward", lambda m: m.forward(x, bias, log_s), (cpu_actnorm, ref_actnorm), 2 * a),
        ("actnorm inverse", lambda m: m.inverse(x, bias, log_s), (cpu_actnorm, ref_actnorm), 2 * a),
        ("actnorm forward_backward", lambda m: m.forward_backward(x, bias, log_s, g, glogdet),
         (cpu_actnorm, ref_actnorm), 3 * a),
        ("actnorm inverse_backward", lambda m: m.inverse_backward(x, bias, log_s, g, glogdet),
         (cpu_actnorm, ref_actnorm), 3 * a),
        ("gaussian standard_log_prob", lambda m: m.standard_log_prob(x), (cpu_gaussian, ref_gaussian), a),
        ("gaussian standard_log_prob_backward", lambda m: m.standard_log_prob_backward(x, glogdet),
         (cpu_gaussian, ref_gaussian), 2 * a),
        ("bias+relu forward (in place)", lambda m: m.forward(z, bias), (cpu_bias_relu, ref_bias_relu), 2 * a),
        ("bias+relu backward", lambda m: m.backward(y_relu, g.reshape(z.shape)), (cpu_bias_relu, ref_bias_relu),
         3 * a),
        ("adam update (one parameter)", lambda m: m.update(theta, g, m_adam, v_adam, **adam_scalars),
         (cpu_adam, ref_adam), 7 * a),
    ]
    return out


def _median_alternating(calls, repeats):
    """Median time of each call in ``calls``, timed round-robin ``repeats`` times after one warm-up each."""
    for call in calls:
        call()
    times = [[] for _ in calls]
    for _ in range(repeats):
        for call, store in zip(calls, times):
            start = time.perf_counter()
            call()
            store.append(time.perf_counter() - start)
    return [float(np.median(v)) for v in times]


def run(quick=False, dtype=np.float32):
    import numba

    repeats = 5 if quick else 15
    triad = triad_gbps(1 << 23 if quick else 1 << 25, 5 if quick else 9)
    rng = np.random.default_rng(0)
    rows = []
    sizes = dict(list(SIZES.items())[:1]) if quick else SIZES
    for size_name, shape in sizes.items():
        for name, call, (kernel_mod, twin_mod), nbytes in cases(shape, dtype, rng):
            twin, kernel = _median_alternating([lambda: call(twin_mod), lambda: call(kernel_mod)], repeats)
            gbps = nbytes / kernel / 1e9
            rows.append(dict(size=size_name, kernel=name, twin_ms=twin * 1e3, numba_ms=kernel * 1e3,
                             speedup=twin / kernel, mbytes=nbytes / 1e6, gbps=gbps, of_triad=gbps / triad))
    return dict(triad_gbps=triad, threads=numba.get_num_threads(), dtype=np.dtype(dtype).name,
                repeats=repeats, rows=rows, parallel=parallel_check(sizes, dtype, repeats))


def parallel_check(sizes, dtype, repeats):
    """Serial kernels against ``parallel=True`` builds of the same source (affine coupling, sigmoid form)."""
    import numba

    flags = dict(fastmath=cpu_affine.REDUCTION_FLAGS, error_model="numpy")
    parallel_forward = numba.njit(parallel=True, **flags)(cpu_affine._forward.py_func)
    parallel_backward = numba.njit(parallel=True, **flags)(cpu_affine._forward_backward.py_func)
    rng = np.random.default_rng(1)
    out = []
    for size_name, shape in sizes.items():
        n = shape[0]
        x, h, t, g = (rng.standard_normal((n, int(np.prod(shape[1:])))).astype(dtype) for _ in range(4))
        y, gx, gh = np.empty_like(x), np.empty_like(x), np.empty_like(x)
        logdet, glogdet = np.empty(n, dtype), rng.standard_normal(n).astype(dtype)
        pairs = {"forward": (lambda: cpu_affine._forward(x, h, t, y, logdet, False),
                             lambda: parallel_forward(x, h, t, y, logdet, False)),
                 "forward_backward": (lambda: cpu_affine._forward_backward(x, h, g, glogdet, gx, gh, False),
                                      lambda: parallel_backward(x, h, g, glogdet, gx, gh, False))}
        for name, (serial, parallel) in pairs.items():
            t_serial, t_parallel = _median_alternating([serial, parallel], repeats)
            out.append(dict(size=size_name, kernel=f"affine sigmoid {name}", serial_ms=t_serial * 1e3,
                            parallel_ms=t_parallel * 1e3))
    return dict(threads=numba.get_num_threads(), layer=numba.threading_layer(), rows=out)


def markdown(result):
    lines = [f"STREAM triad ({TRIAD_SOURCE}): **{result['triad_gbps']:.1f} GB/s**; dtype {result['dtype']}; "
             f"Numba threads {result['threads']}; median of {result['repeats']} alternating rounds.", "",
             "| size | kernel | NumPy twin ms | Numba ms | speed-up | MB moved | GB/s | % of triad |",
             "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['size']} | {r['kernel']} | {r['twin_ms']:.3f} | {r['numba_ms']:.3f} | "
                     f"{r['speedup']:.1f}x | {r['mbytes']:.1f} | {r['gbps']:.1f} | {100 * r['of_triad']:.0f}% |")
    coupling = [r for r in result["rows"] if r["kernel"].startswith("affine")]
    met = sum(r["of_triad"] >= COUPLING_TARGET for r in coupling)
    lines += ["", f"Fused coupling kernels at ≥ {100 * COUPLING_TARGET:.0f}% of the triad: {met} of {len(coupling)}.", ""]
    par = result["parallel"]
    lines += [f"parallel=True build ({par['threads']} threads, threading layer {par['layer']}) against the serial "
              "kernel:", "", "| size | kernel | serial ms | parallel ms |", "|---|---|---|---|"]
    lines += [f"| {r['size']} | {r['kernel']} | {r['serial_ms']:.3f} | {r['parallel_ms']:.3f} |" for r in par["rows"]]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the small size only, fewer repeats")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = parser.parse_args(argv)
    env = {k: os.environ.get(k, "(unset)") for k in ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS",
                                                    "OMP_WAIT_POLICY")}
    print(f"env: {env}; load average at start: {os.getloadavg()[0]:.2f}")
    print(markdown(run(args.quick, np.dtype(args.dtype).type)))
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
