"""What keeping freed memory (``nflow.heap.keep_freed_memory``, which the ``nflow`` command calls at start) does to
a training step's time and peak memory: glibc's defaults against freed blocks kept, model by model and batch by
batch, each in a fresh child process.

    python -m benchmarks.freed_memory [--workloads glow-b16 glow-mnist glow-b256 ...] [--rounds 2] [--steps 5]

Each child builds the runner's workload (``benchmarks/workloads.py``; Adam lr 1e-4, a batch of MNIST from
``$NFLOW_DATA`` or uniform noise), runs two warm-up training steps and prints the median of ``--steps`` more and
its peak resident size. The children's environment has no ``MALLOC_*`` variable (so the first condition is
glibc's own behaviour) and the runner's thread counts; the "kept" child calls ``keep_freed_memory()`` before
anything else. The two conditions alternate, ``--rounds`` children each; the medians over rounds are printed with
their ratio. A child that fails gives a row that says so; the others still run.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from benchmarks.workloads import CLEARED_ENV, ROOT, THREAD_ENV, WORKLOADS

DEFAULT_WORKLOADS = ("glow-b16", "glow-mnist", "glow-b256", "realnvp-mnist", "nice-mnist")
CONDITIONS = ("glibc defaults", "freed blocks kept")
CHILD_TIMEOUT_S = 900


def child(workload, steps, keep):
    """Runs in a fresh process: one JSON line with the median step (ms) and the peak RSS (MiB)."""
    from nflow.heap import keep_freed_memory

    kept = keep_freed_memory() if keep else (False, "glibc defaults")  # before NumPy allocates anything
    import resource

    import nflow.functional as F
    from benchmarks.workloads import LR, mnist_batch, seeded_model
    from nflow.optim import Adam

    model = seeded_model(workload)
    x, _ = mnist_batch(WORKLOADS[workload][2])
    optimizer = Adam(model.parameters(), lr=LR)

    def step():
        optimizer.zero_grad()
        F.mean(-model.log_prob(x)).backward()
        optimizer.step()

    step(), step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    print(json.dumps({"ms": 1e3 * statistics.median(times), "kept": kept[0], "why": kept[1],
                      "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def run_child(workload, steps, keep):
    """One child's result, or {"error": ...} when it failed."""
    env = {k: v for k, v in os.environ.items() if k not in CLEARED_ENV}
    env.update(THREAD_ENV)
    command = [sys.executable, "-m", "benchmarks.freed_memory", "--child", workload, "--steps", str(steps)]
    try:
        done = subprocess.run(command + (["--keep"] if keep else []), cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=CHILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"error": f"no result within {CHILD_TIMEOUT_S} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"child exit {done.returncode}: {tail}"}
    return json.loads(lines[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", choices=sorted(WORKLOADS), default=list(DEFAULT_WORKLOADS))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--child", choices=sorted(WORKLOADS), help=argparse.SUPPRESS)
    parser.add_argument("--keep", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, args.steps, args.keep)
    print(f"training step, median of {args.steps} after 2 warm-up steps, median over {args.rounds} rounds; "
          f"{', '.join(f'{k}={v}' for k, v in THREAD_ENV.items())}; load {os.getloadavg()[0]:.2f}")
    print(f"| workload (batch) | {CONDITIONS[0]} ms | {CONDITIONS[1]} ms | ratio | peak MiB, defaults / kept |")
    print("|---|---|---|---|---|")
    for workload in args.workloads:
        results = {keep: [] for keep in (False, True)}
        for _ in range(args.rounds):
            for keep in (False, True):
                results[keep].append(run_child(workload, args.steps, keep))
        label = f"{workload} ({WORKLOADS[workload][2]})"
        failed = [r["error"] for rs in results.values() for r in rs if "error" in r]
        if failed:
            print(f"| {label} | failed: {failed[0]} | | | |")
            continue
        ms = {keep: statistics.median(r["ms"] for r in rs) for keep, rs in results.items()}
        peak = {keep: max(r["peak_mib"] for r in rs) for keep, rs in results.items()}
        kept_note = "" if all(r["kept"] for r in results[True]) else f" (not kept: {results[True][0]['why']})"
        print(f"| {label} | {ms[False]:.0f} | {ms[True]:.0f}{kept_note} | {ms[False] / ms[True]:.2f} | "
              f"{peak[False]:.0f} / {peak[True]:.0f} |")


if __name__ == "__main__":
    main()
