"""Issue 4: one Glow training step on the ``numba`` backend against the ``numpy`` backend, and where it goes.

    python -m benchmarks.glow_step [--quick] [--repeats N] [--no-profile] [--no-compile]

The step (the issue's configuration): ``Glow((1, 28, 28), levels=2, steps=8, hidden=256)`` in float32, a batch
of 64 uniform [0, 1) images, loss = -log_prob(x).mean(), backward, one Adam step (lr 1e-4), gradients
cleared first. Both models are built from one seed, ActNorm is initialised on the batch before any timing, and
the two backends' steps alternate round by round in one process (so a load change on this shared machine hits
both); each figure is the median of ``repeats`` rounds after one warm-up round.

Numba's compile time is kept out of those figures and measured on its own, in a child process whose Numba
cache directory (``NUMBA_CACHE_DIR``) starts empty: (first numba step - steady numba step) - (first numpy step
- steady numpy step), i.e. the numba backend's extra first-call cost beyond what the numpy backend's first
call also pays. A second child with the cache filled gives the cost of loading the cached kernels.

The profile (``--no-profile`` to skip) times every op's ``forward`` and ``backward`` by class over one step
per backend (wrapping ``Function`` subclasses' methods; the graph walk, Adam and Python glue are the rest).
"""
import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

SHAPE, LEVELS, STEPS, HIDDEN, BATCH, LR = (1, 28, 28), 2, 8, 256, 64, 1e-4


def build(backend, seed=0):
    import nflow
    from nflow.models import Glow
    from nflow.optim import Adam

    x = np.random.default_rng(seed).uniform(0, 1, (BATCH,) + SHAPE).astype(np.float32)
    with nflow.backend(backend):
        nflow.seed(seed)
        model = Glow(SHAPE, levels=LEVELS, steps=STEPS, hidden=HIDDEN)
        with nflow.no_grad():
            model.log_prob(x)  # ActNorm's data-dependent initialisation, outside every timing
    return model, Adam(model.parameters(), lr=LR), x


def step(model, opt, x, backend):
    import nflow

    with nflow.backend(backend):
        opt.zero_grad()
        loss = -model.log_prob(x).mean()
        loss.backward()
        opt.step()
        return float(loss.data)


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# ---------------------------------------------------------------------------------------------- steady state
def steady(repeats):
    setups = {b: build(b) for b in ("numpy", "numba")}
    losses = {b: step(*setups[b], b) for b in setups}  # warm-up round (and compile/cache load for numba)
    times = collections.defaultdict(list)
    for _ in range(repeats):
        for backend, (model, opt, x) in setups.items():
            times[backend].append(timed(lambda: step(model, opt, x, backend)))
    return {b: dict(median_s=float(np.median(v)), min_s=float(np.min(v)), all_s=[round(t, 3) for t in v])
            for b, v in times.items()}, losses


# ---------------------------------------------------------------------------------------------- compile time
def _first_vs_steady(backend, rounds=3):
    model, opt, x = build(backend)
    first = timed(lambda: step(model, opt, x, backend))
    return first, float(np.median([timed(lambda: step(model, opt, x, backend)) for _ in range(rounds)]))


def compile_child():
    """Run in a child: first and steady step times of both backends, numba first."""
    out = {}
    for backend in ("numba", "numpy"):
        out[backend] = _first_vs_steady(backend)
    print(json.dumps(out))


def compile_time():
    results = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("empty cache (compiles)", "filled cache (loads)"):
            done = subprocess.run([sys.executable, "-m", "benchmarks.glow_step", "--compile-child"], env=env,
                                  capture_output=True, text=True, check=True)
            r = json.loads(done.stdout.strip().splitlines()[-1])
            (nb_first, nb_steady), (np_first, np_steady) = r["numba"], r["numpy"]
            results[label] = dict(numba_first_s=nb_first, numba_steady_s=nb_steady, numpy_first_s=np_first,
                                  numpy_steady_s=np_steady,
                                  extra_first_call_s=(nb_first - nb_steady) - (np_first - np_steady))
    return results


# ---------------------------------------------------------------------------------------------- profile
def profile():
    """Seconds per (op class, direction) over one step on each backend."""
    from nflow.tensor import Function

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    totals = collections.defaultdict(float)
    originals = []

    def wrap(cls, name):
        method = cls.__dict__[name]

        def timed_method(self, *args):
            start = time.perf_counter()
            try:
                return method(self, *args)
            finally:
                totals[(type(self).__name__, name)] += time.perf_counter() - start
        originals.append((cls, name, method))
        setattr(cls, name, timed_method)

    out = {}
    for backend in ("numpy", "numba"):
        model, opt, x = build(backend)
        step(model, opt, x, backend)  # warm-up, unprofiled
        for cls in set(subclasses(Function)):
            for name in ("forward", "backward"):
                if name in cls.__dict__:
                    wrap(cls, name)
        totals.clear()
        try:
            total = timed(lambda: step(model, opt, x, backend))
        finally:
            for cls, name, method in originals:
                setattr(cls, name, method)
            originals.clear()
        ranked = sorted(totals.items(), key=lambda kv: -kv[1])
        out[backend] = dict(step_s=total, ops=[(f"{c}.{d}", s) for (c, d), s in ranked])
    return out


# ---------------------------------------------------------------------------------------------- report
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds instead of the default")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds per backend (default 7)")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--no-compile", action="store_true", help="skip the compile-time child processes")
    parser.add_argument("--compile-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.compile_child:
        compile_child()
        return
    import numba

    repeats = args.repeats or (3 if args.quick else 7)
    env = {k: os.environ.get(k, "(unset)") for k in ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                                    "NUMBA_NUM_THREADS", "MALLOC_MMAP_THRESHOLD_")}
    print(f"date: {time.strftime('%Y-%m-%d %H:%M')}; env: {env}; numba threads {numba.get_num_threads()}; "
          f"load average at start: {os.getloadavg()[0]:.2f}")
    times, losses = steady(repeats)
    print(f"\nGlow step {SHAPE}, L={LEVELS}, K={STEPS}, hidden {HIDDEN}, batch {BATCH}, float32; median of {repeats} "
          f"alternating rounds after one warm-up (first-round losses: numpy {losses['numpy']:.4f}, "
          f"numba {losses['numba']:.4f})\n")
    print("| backend | median s | min s | all rounds s |\n|---|---|---|---|")
    for b, r in times.items():
        print(f"| {b} | {r['median_s']:.3f} | {r['min_s']:.3f} | {r['all_s']} |")
    print(f"\nnumpy / numba (medians): {times['numpy']['median_s'] / times['numba']['median_s']:.3f}x")
    if not args.no_compile:
        print("\nNumba compile time (child processes, NUMBA_CACHE_DIR empty then filled):\n")
        print("| cache | numba first s | numba steady s | numpy first s | numpy steady s | numba's extra first-call s |")
        print("|---|---|---|---|---|---|")
        for label, r in compile_time().items():
            print(f"| {label} | {r['numba_first_s']:.2f} | {r['numba_steady_s']:.2f} | {r['numpy_first_s']:.2f} | "
                  f"{r['numpy_steady_s']:.2f} | {r['extra_first_call_s']:.2f} |")
    if not args.no_profile:
        prof = profile()
        print("\nProfile of one step, seconds inside each op class's forward/backward (top 12):\n")
        for backend, r in prof.items():
            covered = sum(s for _, s in r["ops"])
            print(f"{backend}: step {r['step_s']:.2f} s, ops {covered:.2f} s ({100 * covered / r['step_s']:.0f}%)\n")
            print("| op | s | % of step |\n|---|---|---|")
            for name, s in r["ops"][:12]:
                print(f"| {name} | {s:.3f} | {100 * s / r['step_s']:.1f}% |")
            print()
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
