"""One model's training step and log_prob, nflow against its PyTorch twin, at a chosen thread count and clock.

    python -m benchmarks.step_ratio [--model glow|realnvp|nice] [--threads 1] [--batch 64] [--rounds 5]
                                    [--clock cpu|wall]

A small companion of ``python -m benchmarks`` (which runs 2 threads, wall clock, every workload and setting in
child processes): one process, the same models and weight transfer (``benchmarks.weights.torch_twin``), the two
implementations alternating round by round, medians. ``--clock cpu`` reads this process's CPU time, which on a
shared machine is steadier than wall time for single-threaded runs (other processes' load does not add to it,
though they still share caches and memory bandwidth). Used for the before/after figures of each conv change in
benchmarks/RESULTS.md ("Kernels (issue 4)"): run it at two commits and compare the ratios.

Thread counts are set in the environment before NumPy and torch load, so run it as a fresh process.
"""
import argparse
import os
import sys
import time

CONFIGS = {  # as benchmarks/run.py's WORKLOADS
    "glow": (dict(input_shape=(1, 28, 28), levels=2, steps=8, hidden=256), 64),
    "realnvp": (dict(input_shape=(1, 28, 28), scales=2, hidden=64), 64),
    "nice": (dict(input_shape=(1, 28, 28), couplings=4, hidden=1000, depth=5), 256),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(CONFIGS), default="glow")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=None, help="default: the model's batch in benchmarks/run.py")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    args = parser.parse_args(argv)
    if "numpy" in sys.modules:
        raise RuntimeError("step_ratio: NumPy is already imported; run this as a fresh process (python -m ...)")
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    import numpy as np
    import torch

    import nflow
    import nflow.functional as F
    from benchmarks.weights import torch_twin
    from nflow.models import NICE, Glow, RealNVP
    from nflow.optim import Adam

    torch.set_num_threads(args.threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    kwargs, batch = CONFIGS[args.model]
    batch = args.batch or batch
    nflow.seed(0)
    model = {"glow": Glow, "realnvp": RealNVP, "nice": NICE}[args.model](**kwargs)
    x = np.random.default_rng(0).uniform(0, 1, (batch, 1, 28, 28)).astype(np.float32)
    with nflow.no_grad():
        model.log_prob(x)  # ActNorm's data-dependent initialisation
    twin = torch_twin(model)
    xt = torch.from_numpy(x)
    opt_n = Adam(model.parameters(), lr=1e-4)
    opt_t = torch.optim.Adam(twin.parameters(), lr=1e-4, fused=True)

    def nflow_train():
        opt_n.zero_grad()
        F.mean(-model.log_prob(x)).backward()
        opt_n.step()

    def torch_train():
        opt_t.zero_grad(set_to_none=True)
        (-twin.log_prob(xt).mean()).backward()
        opt_t.step()

    def nflow_log_prob():
        with nflow.no_grad():
            model.log_prob(x)

    def torch_log_prob():
        with torch.no_grad():
            twin.log_prob(xt)

    print(f"{args.model}, batch {batch}, {args.threads} thread(s) each, {args.clock} clock, median of "
          f"{args.rounds} alternating rounds after one warm-up; load average {os.getloadavg()[0]:.2f}")
    for name, ours, theirs in (("train step", nflow_train, torch_train), ("log_prob", nflow_log_prob, torch_log_prob)):
        ours(), theirs()
        times = {"nflow": [], "torch": []}
        for _ in range(args.rounds):
            for side, fn in (("nflow", ours), ("torch", theirs)):
                start = clock()
                fn()
                times[side].append(clock() - start)
        n, t = (float(np.median(times[s])) for s in ("nflow", "torch"))
        print(f"{name}: nflow {n:.3f} s, torch {t:.3f} s, nflow/torch {n / t:.2f}")


if __name__ == "__main__":
    main()
