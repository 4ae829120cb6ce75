"""What this machine can do, so that every other benchmark can be read against it.

- :func:`gemm_gflops`: the float32 matrix-multiply rate NumPy's BLAS reaches (an n×n×n product, 2n³ FLOPs),
  the ceiling of any convolution written as GEMMs.
- :func:`triad_gbps`: STREAM's triad ``a = b + s·c`` on arrays far larger than the last-level cache, counted
  as STREAM counts it (3 arrays × 8 bytes per element: read b, read c, write a). Run twice: fused in one pass
  (a Numba loop over both cores, what the memory system can deliver) and as NumPy writes it (two passes,
  ``a = s·c; a += b``, which really moves 5 arrays but is credited with 3, so it reads lower).
- :func:`describe`: CPU, cores, library versions, the BLAS build and the kernel it picked at run time, the
  thread and core-type environment variables, and the load average (other work on the machine skews timings).

OpenBLAS chooses its kernels (``Haswell`` = AVX2, ``SkylakeX`` = AVX-512, ...) when it is loaded, from the CPU
or from ``OPENBLAS_CORETYPE``; so a comparison of core types needs one process each:
``python -m benchmarks.machine --compare-coretypes`` runs this module once per setting and tabulates them.

    python -m benchmarks.machine [--quick] [--compare-coretypes] [--clock cpu]
"""
import argparse
import ctypes
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from nflow.kernels.cpu.blas import loaded_blas_paths

# the CPU feature each forced OpenBLAS core type needs: without it the process dies of SIGILL
OPENBLAS_CORE_NEEDS = {"SkylakeX": "avx512f", "Haswell": "avx2"}
ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


# ---------------------------------------------------------------------------------------------- timing
def median_time(fn, repeats, warmup=1, clock=time.perf_counter):
    """Median time of ``fn()`` in seconds over ``repeats`` calls, after ``warmup`` untimed calls.

    ``clock``: wall time by default; ``time.process_time`` gives this process's CPU time (all its threads),
    which other processes on a shared machine disturb far less (read it as core-seconds).
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return float(np.median(times))


# ---------------------------------------------------------------------------------------------- GEMM
def gemm_gflops(n=2048, repeats=7, dtype=np.float32, clock=time.perf_counter):
    """GFLOP/s of ``C = A @ B`` with n×n matrices: 2n³ FLOPs over the median time (see :func:`median_time`)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    c = np.empty((n, n), dtype=dtype)
    seconds = median_time(lambda: np.matmul(a, b, out=c), repeats, clock=clock)
    return 2.0 * n ** 3 / seconds / 1e9


# ---------------------------------------------------------------------------------------------- STREAM triad
_fused_triad = None


def _compile_fused_triad():
    """A one-pass triad over all cores (Numba ``prange``); compiled once, compile time never timed."""
    global _fused_triad
    if _fused_triad is None:
        import numba

        @numba.njit(parallel=True, fastmath=False, cache=False)
        def triad(a, b, c, s):
            for i in numba.prange(a.size):
                a[i] = b[i] + s * c[i]

        _fused_triad = triad
    return _fused_triad


def triad_gbps(n=1 << 25, repeats=7, fused=True):
    """STREAM triad bandwidth in GB/s: ``a = b + s·c`` on float64 arrays of ``n`` elements (default 2²⁵,
    256 MiB each, 8× a 32 MiB L3), counted as 3·8·n bytes per pass, median over ``repeats``.

    ``fused=True``: one Numba pass; ``fused=False``: NumPy's two passes (``a = s·c``, then ``a += b``).
    """
    a = np.zeros(n)            # np.zeros/full touch every page now, not inside the timed region
    b = np.full(n, 1.0)
    c = np.full(n, 2.0)
    s = 3.0
    if fused:
        triad = _compile_fused_triad()
        triad(a[:16], b[:16], c[:16], s)  # compile on a small slice

        def run():
            triad(a, b, c, s)
    else:
        def run():
            np.multiply(c, s, out=a)
            np.add(a, b, out=a)
    seconds = median_time(run, repeats)
    if not np.all(a[:: n // 64] == 7.0):  # check the work was done before reporting its speed
        raise AssertionError("triad produced wrong values")
    return 3 * 8 * n / seconds / 1e9


# ---------------------------------------------------------------------------------------------- description
def _cpuinfo():
    info = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key in ("model name", "cpu family", "model", "flags", "cpu MHz") and key not in info:
                    info[key] = value
    except OSError:
        pass
    return info


def _openblas_runtime():
    """The core type and thread count OpenBLAS chose at load time, read from the library NumPy loaded (NumPy's own
    first: SciPy's copy, mapped once Numba has compiled anything, reports its own threads)."""
    libs = [path for path in loaded_blas_paths() if "openblas" in os.path.basename(path).lower()]
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        out = {"library": os.path.basename(path)}
        for suffix in ("", "64_", "_64"):
            for prefix in ("openblas_", "scipy_openblas_"):
                core = getattr(lib, f"{prefix}get_corename{suffix}", None)
                threads = getattr(lib, f"{prefix}get_num_threads{suffix}", None)
                if core is not None and "corename" not in out:
                    core.restype = ctypes.c_char_p
                    out["corename"] = core().decode()
                if threads is not None and "threads" not in out:
                    threads.restype = ctypes.c_int
                    out["threads"] = threads()
        if "corename" in out:
            return out
    return {}


def _blas_build():
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version')} ({' '.join(blas.get('openblas configuration', '').split())})"
    except Exception:  # older NumPy: no dict mode
        return "unknown"


def describe():
    """A dict describing this machine and the software measuring it."""
    cpu = _cpuinfo()
    flags = cpu.get("flags", "").split()
    try:
        import numba
        numba_version, numba_threads = numba.__version__, numba.config.NUMBA_NUM_THREADS
    except ImportError:
        numba_version, numba_threads = "absent", None
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    blas = _openblas_runtime()
    return {
        "cpu": cpu.get("model name", platform.processor() or "unknown"),
        "cpu family/model": f"{cpu.get('cpu family', '?')}/{cpu.get('model', '?')}",
        "cpu MHz (reported)": cpu.get("cpu MHz", "?"),
        "SIMD": " ".join(f for f in ("avx2", "fma", "avx512f", "avx512_bf16") if f in flags) or "?",
        "logical cores": os.cpu_count(),
        "cores usable (affinity)": affinity,
        "load average (1 min) at start": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba_version,
        "numba threads": numba_threads,
        "BLAS build": _blas_build(),
        "OpenBLAS core type at run time": blas.get("corename", "unknown"),
        "OpenBLAS threads": blas.get("threads", "unknown"),
        **{f"${name}": os.environ.get(name, "(unset)") for name in ENV_VARS},
    }


# ---------------------------------------------------------------------------------------------- tables
def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def measure(quick=False, clock="wall"):
    """Every figure of this module as a dict (the description included). ``clock="cpu"`` times the GEMM
    with CPU time (core-seconds); the triads are always timed by the wall clock."""
    n_gemm, n_triad, repeats = (1024, 1 << 23, 5) if quick else (2048, 1 << 25, 11)
    out = dict(describe())
    gemm_clock = time.process_time if clock == "cpu" else time.perf_counter
    out[f"sgemm {n_gemm}³ (GFLOP/s, median of {repeats}, {clock} clock)"] = round(
        gemm_gflops(n_gemm, repeats, clock=gemm_clock), 1)
    out[f"triad fused, Numba, {n_triad * 8 >> 20} MiB arrays (GB/s)"] = round(triad_gbps(n_triad, repeats, True), 1)
    out[f"triad NumPy 2-pass, {n_triad * 8 >> 20} MiB arrays (GB/s)"] = round(triad_gbps(n_triad, repeats, False), 1)
    return out


def cpu_flags(cpuinfo=None):
    """The CPU's feature flags, read at run time (the ``flags``/``Features`` line of /proc/cpuinfo on Linux, x86
    or ARM); an empty set where they cannot be read. ``cpuinfo``: the file's text, for tests."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return frozenset()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def compare_coretypes(quick, clock="wall", coretypes=("", "SkylakeX", "Haswell")):
    """Run :func:`measure` in one fresh process per ``OPENBLAS_CORETYPE`` value ("" = let OpenBLAS choose).

    A core type whose instructions this CPU lacks (:data:`OPENBLAS_CORE_NEEDS`) is skipped and said so; a child
    that fails anyway is reported in its column rather than ending the comparison."""
    flags = cpu_flags()
    results = {}
    for coretype in coretypes:
        needs = OPENBLAS_CORE_NEEDS.get(coretype)
        if needs and needs not in flags:
            print(f"OPENBLAS_CORETYPE={coretype} skipped: it runs {needs} instructions, which this CPU does not have",
                  file=sys.stderr)
            continue
        env = dict(os.environ)
        env.pop("OPENBLAS_CORETYPE", None)
        if coretype:
            env["OPENBLAS_CORETYPE"] = coretype
        args = [sys.executable, "-m", "benchmarks.machine", "--json", "--clock", clock] + (["--quick"] if quick else [])
        done = subprocess.run(args, env=env, capture_output=True, text=True)
        if done.returncode:
            print(f"OPENBLAS_CORETYPE={coretype or '(unset)'}: the child failed (exit {done.returncode}); "
                  f"{done.stderr.strip()[-300:]}", file=sys.stderr)
            continue
        results[coretype or "(unset)"] = json.loads(done.stdout)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller arrays, fewer repeats (seconds, not tens)")
    parser.add_argument("--compare-coretypes", action="store_true",
                        help="one process per OPENBLAS_CORETYPE in (unset, SkylakeX, Haswell), side by side")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="time the GEMM by wall clock (default) or by this process's CPU time")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.json:
        print(json.dumps(measure(args.quick, args.clock)))
        return
    if args.compare_coretypes:
        results = compare_coretypes(args.quick, args.clock)
        keys = list(next(iter(results.values())))
        print(markdown_table(["OPENBLAS_CORETYPE →"] + list(results), [[k] + [r[k] for r in results.values()] for k in keys]))
        return
    print(markdown_table(["quantity", "value"], list(measure(args.quick, args.clock).items())))


if __name__ == "__main__":
    main()
