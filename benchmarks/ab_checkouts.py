"""The same nflow workloads timed in two checkouts of the project, alternating, to show what a change did to speed.

    python -m benchmarks.ab_checkouts OLD_DIR NEW_DIR [--rounds 3] [--repeats 5] [--quick] [--only glow,nice] [--clock cpu]
                                      [--interleave]

Each round runs one child process per checkout (order alternating between rounds, so drift in the machine's
load falls on both sides); a child imports nflow from its checkout, builds the models of the runner's workloads
(``benchmarks/run.py``: Glow, RealNVP, NICE on MNIST-shaped input, same seeds on both sides), warms up, and
times each op ``--repeats`` times. The report gives per op the median of each side over all rounds and their
ratio NEW / OLD. A checkout is a directory holding ``nflow/`` and ``kernels/``; for a commit, make one with
``git worktree add DIR COMMIT`` and ``ln -s ../kernels DIR/nflow/kernels`` (so ``nflow.kernels`` resolves there).

``--interleave``: one long-lived child per checkout, both built and warmed up once, and every single call
alternated between them (old, new, then new, old, ...), with a rest of REST_S before each call so that the other
child's OpenBLAS worker has stopped spinning. Each pair of calls is then seconds apart instead of a whole child,
and the report adds the median of the pairs' ratios with its quartiles. Why: this machine drifts by 10-20 % within
an hour, and the same checkout against itself read 0.96-1.02 in the default mode (benchmarks/RESULTS.md, issue 12,
ninth session), too coarse for the few-percent changes that are left to measure.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

SEED = 0
# wall time, or this process's CPU time (all its threads): steadier when other work shares the machine
CLOCKS = {"wall": "time.perf_counter", "cpu": "time.process_time"}
WARMUP = 2
REST_S = 0.2  # --interleave: before each call; OpenBLAS's idle worker spins for ~0.1 s after a threaded call
QUICK_SHRINK = 4  # --quick: batches divided by this, as benchmarks/run.py does
# name -> (model class, constructor kwargs, batch), the runner's three main workloads
WORKLOADS = {
    "glow": ("Glow", dict(input_shape=(1, 28, 28), levels=2, steps=8, hidden=256), 64),
    "realnvp": ("RealNVP", dict(input_shape=(1, 28, 28), scales=2, hidden=64), 64),
    "nice": ("NICE", dict(input_shape=(1, 28, 28), couplings=4, hidden=1000, depth=5), 256),
}

# What both kinds of child share: nflow from the checkout, and each workload's model, Adam and batch as three ops.
COMMON = r'''
import json, sys, time
import numpy as np
sys.path.insert(0, {checkout!r})
import nflow, nflow.functional as F, nflow.models as models
assert nflow.__file__.startswith({checkout!r}), nflow.__file__
rng = np.random.default_rng({seed})

def workload_ops(cls, kwargs, batch):
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
    return {{"train_step": train_step, "log_prob": log_prob, "sample": sample}}

def warmed_ops():
    for name, (cls, kwargs, batch) in {workloads!r}.items():
        for op, fn in workload_ops(cls, kwargs, batch).items():
            for _ in range({warmup}):
                fn()
            yield name + " " + op, fn
'''
# the default mode: each op timed ``repeats`` times right after its warm-up; all times as one JSON line
CHILD = COMMON + r'''
out = {{}}
for key, fn in warmed_ops():
    times = []
    for _ in range({repeats}):
        t = {clock}(); fn(); times.append({clock}() - t)
    out[key] = times
print(json.dumps(out))
'''
# --interleave: every op warmed up, their names as one JSON line, then one op per line read, its time written back
SERVER = COMMON + r'''
ops = dict(warmed_ops())
print(json.dumps(list(ops)), flush=True)
for line in sys.stdin:
    fn = ops[line.strip()]
    t = {clock}(); fn(); print(json.dumps({clock}() - t), flush=True)
'''


def run_child(checkout, repeats, shrink, workloads, clock):
    code = CHILD.format(checkout=os.path.abspath(checkout), seed=SEED, workloads=workloads, shrink=shrink,
                        clock=CLOCKS[clock],
                        warmup=WARMUP, repeats=repeats)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=checkout)
    if done.returncode != 0:
        raise SystemExit(f"ab_checkouts: the child in {checkout} failed (exit {done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def start_server(checkout, shrink, workloads, clock):
    """A child for ``--interleave``: builds and warms up the models, then answers one op per line."""
    code = SERVER.format(checkout=os.path.abspath(checkout), seed=SEED, workloads=workloads, shrink=shrink,
                         clock=CLOCKS[clock], warmup=WARMUP)
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             cwd=checkout)
    first = child.stdout.readline()
    if not first:
        close(child)
        raise SystemExit(f"ab_checkouts: the child in {checkout} failed before it was ready (exit {child.wait()})")
    return child, json.loads(first)


def close(child):
    """End a child of :func:`start_server` (its loop ends with its input) and close both pipes."""
    child.stdin.close()
    child.wait()
    child.stdout.close()


def ask(child, op, checkout):
    """One call of ``op`` in ``child``, after REST_S of rest; its time."""
    time.sleep(REST_S)
    child.stdin.write(op + "\n")
    child.stdin.flush()
    answer = child.stdout.readline()
    if not answer:
        raise SystemExit(f"ab_checkouts: the child in {checkout} died during {op} (exit {child.wait()})")
    return json.loads(answer)


def interleaved(checkouts, calls, shrink, workloads, clock):
    """{side: {op: [times]}} and {op: [new / old of each pair]}: ``calls`` pairs per op, the sides' order
    alternating from pair to pair."""
    children, times, ratios = {}, {"old": {}, "new": {}}, {}
    try:
        for side, checkout in checkouts.items():
            children[side] = start_server(checkout, shrink, workloads, clock)
        for op in children["old"][1]:
            for i in range(calls):
                pair = {}
                for side in (("old", "new") if i % 2 == 0 else ("new", "old")):
                    pair[side] = ask(children[side][0], op, checkouts[side])
                    times[side].setdefault(op, []).append(pair[side])
                ratios.setdefault(op, []).append(pair["new"] / pair["old"])
            print(f"{op} done, load {os.getloadavg()[0]:.2f}", file=sys.stderr)
    finally:
        for child, _ in children.values():
            close(child)
    return times, ratios


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help=f"batches divided by {QUICK_SHRINK}")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall")
    parser.add_argument("--only", default=",".join(WORKLOADS), help=f"comma-separated subset of {', '.join(WORKLOADS)}")
    parser.add_argument("--interleave", action="store_true",
                        help="two long-lived children, every call alternated between them (rounds x repeats pairs)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.repeats < 1:
        parser.error("--rounds and --repeats must be at least 1")
    if args.interleave and args.rounds * args.repeats < 2:
        parser.error("--interleave needs at least 2 pairs (rounds x repeats) for the quartiles of their ratios")
    unknown = set(args.only.split(",")) - set(WORKLOADS)
    if unknown:
        parser.error(f"--only: unknown workloads {sorted(unknown)}; choose from {', '.join(WORKLOADS)}")
    workloads = {name: WORKLOADS[name] for name in args.only.split(",")}
    for checkout in (args.old, args.new):
        if not os.path.isdir(os.path.join(checkout, "nflow", "kernels")):
            parser.error(f"{checkout}: no nflow/kernels inside; see the module docstring for how to make a checkout")
    shrink = QUICK_SHRINK if args.quick else 1
    if args.interleave:
        times, ratios = interleaved({"old": args.old, "new": args.new}, args.rounds * args.repeats, shrink,
                                    workloads, args.clock)
        print(f"| op (batch{' / ' + str(QUICK_SHRINK) if args.quick else ''}) | old median (s) | new median (s) "
              "| new / old | paired ratios: median (quartiles) |\n|---|---|---|---|---|")
        for op, pairs in ratios.items():
            old, new = statistics.median(times["old"][op]), statistics.median(times["new"][op])
            low, _, high = statistics.quantiles(pairs, n=4)
            print(f"| {op} | {old:.4f} | {new:.4f} | {new / old:.3f} | {statistics.median(pairs):.3f} "
                  f"({low:.3f}–{high:.3f}) |")
        return
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
