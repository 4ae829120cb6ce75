"""Issue 7: nflow against PyTorch implementations of the same models, same weights, side by side.

    python -m benchmarks [--quick] [--no-compile] [--settings default,tuned] [--only glow-mnist,...] [--no-write]
    python benchmarks/run.py ...

What is measured, per workload (all float32, on the CPU):

- ``log_prob``: log p(x) of one batch without gradients (nflow ``no_grad``, torch ``no_grad``);
- ``train step``: forward + backward of the mean NLL + one Adam step (lr 1e-4; torch's ``fused=True`` Adam,
  its fastest on the CPU), gradients cleared first;
- ``sample 64``: 64 images at temperature 1 (nflow ``model.sample(64)``, torch ``model.sample(64)``).

Implementations, alternating inside one process (nflow, PyTorch eager, ``torch.compile`` when asked), each on
2 threads: torch via ``torch.set_num_threads(2)``; nflow via ``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS``/
``NUMBA_NUM_THREADS`` = 2 set in the environment before NumPy loads. Each figure is the median wall time of
``repeats`` rounds after warm-up, each timed call after 0.2 s of rest (``children.SETTLE_S``: OpenBLAS's worker
spins for ~0.1 s after a threaded call and would otherwise slow whichever implementation is timed next; runs before
the seventh session of issue 12 had no rest and timed PyTorch up to 1.36x slow after nflow's OpenBLAS rounds);
the nflow model is built first, ActNorm is initialised on the benchmark
batch, and the weights are copied into the torch twin (``benchmarks.weights``), whose log_prob is checked
against nflow's before any timing (column "parity").

Environment settings (each needs a fresh process, so every (setting, workload) is one child process):

- ``default``: nothing set beyond the thread counts;
- ``tuned``: ``OPENBLAS_CORETYPE=SkylakeX`` (OpenBLAS's run-time dispatch picks AVX2 kernels on this AMD CPU;
  the variable selects its AVX-512 kernels; it reaches NumPy's OpenBLAS, not torch's MKL/oneDNN) and glibc's
  ``MALLOC_MMAP_THRESHOLD_=2^30`` / ``MALLOC_TRIM_THRESHOLD_=2^31`` (large freed blocks stay in the heap
  instead of being unmapped, so they are not page-faulted in again on the next allocation; both sides).

A setting that forces an OpenBLAS core type whose instructions the CPU lacks (AVX-512 for ``SkylakeX``; read
from the CPU at run time) is skipped and said so, and a child that fails is a note in the report, not the end of
the run.

The code: ``workloads.py`` (what is measured), ``children.py`` (the measurements, in child processes),
``launch.py`` (starting the children), ``report.py`` (the markdown), ``results_file.py`` (rewriting RESULTS.md).

Roofline: analytic FLOPs of the GEMM-shaped work (every convolution, linear layer and 1x1 invertible
convolution: 2·MACs from the layer shapes; backward = 2 × forward, so a training step is 3 × forward; sampling
runs the same networks as log_prob) divided by the best float32 GEMM rate measured in the same run (every child
process measures NumPy's BLAS via ``benchmarks.machine.gemm_gflops`` and ``torch.mm``, n = 2048). "x/roofline" is the
measured time over that bound (1.0 = at the GEMM rate; element-wise work is not counted).

Peak memory (depth scaling): one fresh process per (implementation, K, setting) builds the model and batch,
runs ActNorm's initialisation, records RSS, runs two training steps and reads ``ru_maxrss``. The nflow child
never imports torch and the torch child never imports nflow.
"""
import argparse
import json
import sys
from pathlib import Path

ROOT_DIR = Path(__file__).resolve().parents[1]
if str(ROOT_DIR) not in sys.path:  # `python benchmarks/run.py` as well as `python -m benchmarks`
    sys.path.insert(0, str(ROOT_DIR))

from benchmarks.children import child_memory, child_profile, child_speed  # noqa: E402
from benchmarks.launch import measure  # noqa: E402
from benchmarks.report import load_run, report, run_info  # noqa: E402
from benchmarks.results_file import RESULTS, write_section  # noqa: E402
from benchmarks.workloads import ROOT, SETTINGS, WORKLOADS  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds, no torch.compile, no deep Glows (minutes)")
    parser.add_argument("--compile", dest="compile", action="store_true", default=None,
                        help="also time torch.compile (default: on in full mode, off in quick mode)")
    parser.add_argument("--no-compile", dest="compile", action="store_false")
    parser.add_argument("--memory", dest="memory", action="store_true", default=None,
                        help="measure peak memory at K = 8, 16, 32 (default: on in full mode, off in quick mode)")
    parser.add_argument("--no-memory", dest="memory", action="store_false")
    parser.add_argument("--settings", default="default,tuned", help="comma-separated subset of " + ",".join(SETTINGS))
    parser.add_argument("--only", default="", help="comma-separated workloads: " + ",".join(WORKLOADS))
    parser.add_argument("--repeats", type=int, default=10, help="timed rounds in full mode (default 10)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per child process")
    parser.add_argument("--no-write", action="store_true", help="print the section, leave RESULTS.md alone")
    parser.add_argument("--json", default="", help="also save the raw measurements to this file")
    parser.add_argument("--child-speed", nargs=5, metavar=("WORKLOAD", "REPEATS", "WARMUP", "BATCH", "SAMPLES"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--profile", dest="profile", action="store_true", default=None,
                        help="cProfile nflow's calls (default: on in full mode, off in quick mode)")
    parser.add_argument("--no-profile", dest="profile", action="store_false")
    parser.add_argument("--from-json", default="", help="render the report from --json file(s), no measuring; with "
                        "several (comma-separated) the first is the main run, the others follow as additional runs")
    parser.add_argument("--child-profile", nargs=3, metavar=("WORKLOAD", "BATCH", "SAMPLES"), help=argparse.SUPPRESS)
    parser.add_argument("--child-memory", nargs=3, metavar=("IMPL", "K", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_speed:
        w, repeats, warmup, batch, samples = args.child_speed
        return child_speed(w, int(repeats), int(warmup), bool(args.compile), int(batch), int(samples))
    if args.child_profile:
        w, batch, samples = args.child_profile
        return child_profile(w, int(batch), int(samples))
    if args.child_memory:
        impl, k, batch = args.child_memory
        return child_memory(impl, int(k), int(batch))
    if args.compile is None:
        args.compile = not args.quick
    if args.memory is None:
        args.memory = not args.quick
    if args.profile is None:
        args.profile = not args.quick
    command = ("python -m benchmarks " + " ".join(argv if argv is not None else sys.argv[1:])).strip()
    if args.from_json:
        runs = [load_run(path) for path in args.from_json.split(",")]
        main_run, extra = runs[0], runs[1:]
    else:
        info = run_info()
        main_run = {"results": measure(args), "command": command, "quick": args.quick, "info": info}
        extra = []
        if args.json:
            Path(args.json).write_text(json.dumps(main_run, indent=1))
    sources = []
    for path in (args.from_json.split(",") if args.from_json else []):
        p = Path(path).resolve()
        sources.append(str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p))
    text = report(main_run["results"], main_run["command"], main_run["quick"], main_run["info"], extra, sources)
    print(text)
    if not args.no_write:
        write_section(text)
        print(f"\n(section rewritten in {RESULTS})", file=sys.stderr)


if __name__ == "__main__":
    main()
