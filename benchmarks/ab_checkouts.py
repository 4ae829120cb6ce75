"""The same nflow workloads timed in two checkouts of the project, alternating, to show what a change did to speed.

    python -m benchmarks.ab_checkouts OLD_DIR NEW_DIR [--rounds 3] [--repeats 5] [--quick] [--only glow,nice] [--clock cpu]

Each round runs one child process per checkout (order alternating between rounds, so drift in the machine's
load falls on both sides); a child imports nflow from its checkout, builds the models of the runner's workloads
(``benchmarks/run.py``: Glow, RealNVP, NICE on MNIST-shaped input, same seeds on both sides), warms up, and
times each op ``--repeats`` times. The report gives per op the median of each side over all rounds and their
ratio NEW / OLD. A checkout is a directory holding ``nflow/`` and ``kernels/``; for a commit, make one with
``git worktree add DIR COMMIT`` and ``ln -s ../kernels DIR/nflow/kernels`` (so ``nflow.kernels`` resolves there).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

SEED = 0
# wall time, or this process's CPU time (all its threads): steadier when other work shares the machine
CLOCKS = {"wall": "time.perf_counter", "cpu": "time.process_time"}
WARMUP = 2
QUICK_SHRINK = 4  # --quick: batches divided by this, as benchmarks/run.py does
# name -> (model class, constructor kwargs, batch), the runner's three main workloads
WORKLOADS = {
    "glow": ("Glow", dict(input_shape=(1, 28, 28), levels=2, steps=8, hidden=256), 64),
    "realnvp": ("RealNVP", dict(input_shape=(1, 28, 28), scales=2, hidden=64), 64),
    "nice": ("NICE", dict(input_shape=(1, 28, 28), couplings=4, hidden=1000, depth=5), 256),
}

CHILD = r'''
import json, sys, time
import numpy as np
sys.path.insert(0, {checkout!r})
import nflow, nflow.functional as F, nflow.models as models
assert nflow.__file__.startswith({checkout!r}), nflow.__file__
rng = np.random.default_rng({seed})
out = {{}}
for name, (cls, kwargs, batch) in {workloads!r}.items():
    batch = max(batch // {shrink}, 2)
    nflow.seed({seed})
    model = getattr(models, cls)(**kwargs)
    opt = nflow.optim.Adam(model.parameters(), lr=1e-4)
    x = rng.uniform(0.05, 0.95, size=(batch,) + kwargs["input_shape"]).astype(np.float32)
    def train_step():
        opt.zero_grad()
        (-F.mean(model.log_prob(x))).backward()
        opt.step()
    def log_prob():
        with nflow.no_grad():
            model.log_prob(x)
    def sample():
        model.sample(batch, temperature=0.7, seed={seed})
    for op, fn in (("train_step", train_step), ("log_prob", log_prob), ("sample", sample)):
        for _ in range({warmup}):
            fn()
        times = []
        for _ in range({repeats}):
            t = {clock}(); fn(); times.append({clock}() - t)
        out[name + " " + op] = times
print(json.dumps(out))
'''


def run_child(checkout, repeats, shrink, workloads, clock):
    code = CHILD.format(checkout=os.path.abspath(checkout), seed=SEED, workloads=workloads, shrink=shrink,
                        clock=CLOCKS[clock],
                        warmup=WARMUP, repeats=repeats)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=checkout)
    if done.returncode != 0:
        raise SystemExit(f"ab_checkouts: the child in {checkout} failed (exit {done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help=f"batches divided by {QUICK_SHRINK}")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall")
    parser.add_argument("--only", default=",".join(WORKLOADS), help=f"comma-separated subset of {', '.join(WORKLOADS)}")
    args = parser.parse_args(argv)
    unknown = set(args.only.split(",")) - set(WORKLOADS)
    if unknown:
        parser.error(f"--only: unknown workloads {sorted(unknown)}; choose from {', '.join(WORKLOADS)}")
    workloads = {name: WORKLOADS[name] for name in args.only.split(",")}
    for checkout in (args.old, args.new):
        if not os.path.isdir(os.path.join(checkout, "nflow", "kernels")):
            parser.error(f"{checkout}: no nflow/kernels inside; see the module docstring for how to make a checkout")
    shrink = QUICK_SHRINK if args.quick else 1
    times = {"old": {}, "new": {}}
    for r in range(args.rounds):
        order = (("old", args.old), ("new", args.new)) if r % 2 == 0 else (("new", args.new), ("old", args.old))
        for side, checkout in order:
            for op, values in run_child(checkout, args.repeats, shrink, workloads, args.clock).items():
                times[side].setdefault(op, []).extend(values)
        print(f"round {r + 1}/{args.rounds} done, load {os.getloadavg()[0]:.2f}", file=sys.stderr)
    print(f"| op (batch{' / ' + str(QUICK_SHRINK) if args.quick else ''}) | old median (s) | new median (s) "
          "| new / old |\n|---|---|---|---|")
    for op in times["old"]:
        old, new = statistics.median(times["old"][op]), statistics.median(times["new"][op])
        print(f"| {op} | {old:.4f} | {new:.4f} | {new / old:.3f} |")


if __name__ == "__main__":
    main()
