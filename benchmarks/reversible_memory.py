"""Issue 6: peak memory and time of a Glow training step, stored vs reversible backprop (vs PyTorch).

Configuration: Glow on 1×28×28, L = 2, hidden 256, batch 64, K ∈ {4, 8, 16, 32} steps per level.

Memory is measured in a fresh process per (implementation, K): the process builds the model and a batch,
runs ActNorm's initialisation, one warm-up training step, then records its resident set size (RSS) and
runs one more training step (forward + backward + Adam); the figure is the peak RSS during that step
(``ru_maxrss``, reset by a fresh process) minus the RSS before it. glibc is told to return every freed
block above 64 KiB to the OS (``MALLOC_MMAP_THRESHOLD_=65536``, fixed, which also disables its dynamic
threshold) so that RSS tracks live arrays on both sides; with the default, freed heap stays resident and
RSS over-states what a step needs.

Time: in one process, stored and reversible steps alternate; medians after warm-up.

    python -m benchmarks.reversible_memory [--quick] [--torch]
"""
import argparse
import json
import os
import subprocess
import sys
import time

MEASURE_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2",
               "NUMBA_NUM_THREADS": "2"}
DEPTHS = (4, 8, 16, 32)
BATCH, HIDDEN, LEVELS, SHAPE = 64, 256, 2, (1, 28, 28)


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_bytes():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def child(impl, steps, batch, hidden):
    """Run in a fresh process: one measured training step; prints JSON."""
    import numpy as np
    rng = np.random.default_rng(0)
    x_np = rng.uniform(0, 1, size=(batch,) + SHAPE).astype(np.float32)
    if impl == "torch":
        import torch
        from benchmarks.torch_models import Glow as TorchGlow
        torch.set_num_threads(2)
        model = TorchGlow(SHAPE, levels=LEVELS, steps=steps, hidden=hidden)
        x = torch.from_numpy(x_np)
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)

        def step():
            opt.zero_grad()
            loss = -model.log_prob(x).mean()
            loss.backward()
            opt.step()
    else:
        import nflow
        from nflow.models import Glow
        from nflow.reversible import nll_and_backward
        nflow.seed(0)
        model = Glow(SHAPE, levels=LEVELS, steps=steps, hidden=hidden)
        opt = nflow.optim.Adam(model.parameters(), lr=1e-4)

        def step():
            model.zero_grad()
            nll_and_backward(model, x_np, reversible=(impl == "reversible"))
            opt.step()
    step()  # warm-up: ActNorm init, optimizer state, Numba compilation
    before = _rss_bytes()
    t = time.perf_counter()
    step()
    seconds = time.perf_counter() - t
    print(json.dumps({"impl": impl, "K": steps, "peak_delta_mib": (_peak_bytes() - before) / 2**20,
                      "rss_before_mib": before / 2**20, "seconds": seconds}))


def measure_memory(impls, depths, batch, hidden):
    rows = []
    env = dict(os.environ, **MEASURE_ENV)
    for k in depths:
        for impl in impls:
            out = subprocess.run([sys.executable, "-m", "benchmarks.reversible_memory", "--child", impl, str(k),
                                  str(batch), str(hidden)], env=env, capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    return rows


def measure_time(steps, batch, hidden, repeats):
    """Stored vs reversible step time in one process, alternating; returns medians (seconds)."""
    import numpy as np
    import nflow
    from nflow.models import Glow
    from nflow.reversible import nll_and_backward
    nflow.seed(0)
    model = Glow(SHAPE, levels=LEVELS, steps=steps, hidden=hidden)
    x = np.random.default_rng(0).uniform(0, 1, size=(batch,) + SHAPE).astype(np.float32)
    times = {"stored": [], "reversible": []}
    for i in range(repeats + 1):
        for impl in ("stored", "reversible"):
            model.zero_grad()
            t = time.perf_counter()
            nll_and_backward(model, x, reversible=(impl == "reversible"))
            if i:  # the first round is warm-up
                times[impl].append(time.perf_counter() - t)
    return {k: float(np.median(v)) for k, v in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="K ∈ {4, 8}, batch 16, hidden 64")
    parser.add_argument("--torch", action="store_true", help="also measure benchmarks.torch_models.Glow")
    parser.add_argument("--child", nargs=4, metavar=("IMPL", "K", "BATCH", "HIDDEN"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        impl, k, batch, hidden = args.child
        return child(impl, int(k), int(batch), int(hidden))
    depths, batch, hidden, repeats = ((4, 8), 16, 64, 3) if args.quick else (DEPTHS, BATCH, HIDDEN, 5)
    impls = ["stored", "reversible"] + (["torch"] if args.torch else [])
    rows = measure_memory(impls, depths, batch, hidden)
    print("\n| K | " + " | ".join(f"{i} peak ΔRSS (MiB)" for i in impls) + " |")
    print("|---|" + "---|" * len(impls))
    for k in depths:
        cells = [f"{r['peak_delta_mib']:.0f}" for i in impls for r in rows if r["impl"] == i and r["K"] == k]
        print(f"| {k} | " + " | ".join(cells) + " |")
    for k in (depths[0], depths[-1]):
        t = measure_time(k, batch, hidden, repeats)
        print(f"time K={k}: stored {t['stored']:.3f} s, reversible {t['reversible']:.3f} s, "
              f"ratio {t['reversible'] / t['stored']:.2f}")


if __name__ == "__main__":
    main()
