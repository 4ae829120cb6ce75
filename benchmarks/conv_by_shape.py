"""Where a training step's convolution time goes, by shape: the conv family's forward and backward and the
bias + ReLU epilogue, timed call by call inside real training steps of the runner's Glow or RealNVP.

    python -m benchmarks.conv_by_shape [--model glow|realnvp] [--batch 64] [--steps 3]

Wraps the dispatched ``conv`` module's ``forward``/``backward``/``relu_backward`` (``kernels/cpu/conv.py`` on the
numba backend; the ReLU's mask is inside ``relu_backward``, and inside ``forward`` where the own kernels fuse it)
and ``bias_relu``'s with timers keyed by (C_in, C_out, k, H) or the epilogue's (rows, columns), runs two
warm-up steps, then averages ``--steps`` steps (MNIST-shaped uniform noise, Adam lr 1e-4). For each shape: calls
per step, milliseconds per step, and the GFLOP/s its GEMMs reached (2·N·H·W·C_in·C_out·k² per forward, twice
that per backward). What is left of the step (the other ops, the graph walk, Adam) is printed last.
"""
import argparse
import collections
import time

import numpy as np

import nflow
import nflow.functional as F
from benchmarks.workloads import WORKLOADS
from nflow.kernels.dispatch import kernel_module

MODELS = {"glow": "glow-mnist", "realnvp": "realnvp-mnist"}


def _timed(module, name, key, totals, counts):
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        out = original(*args, **kwargs)
        totals[(name,) + key(*args)] += time.perf_counter() - start
        counts[(name,) + key(*args)] += 1
        return out

    setattr(module, name, wrapper)
    return original


def conv_key(x, w, *rest, **kwargs):
    return ("conv", x.shape[0], w.shape[0], w.shape[2], x.shape[2])


def epilogue_key(a, *rest):
    return ("bias+relu",) + tuple(a.shape)


def conv_gflop(key, batch):
    _, _, c_in, c_out, k, h = key
    return 2 * batch * h * h * c_in * c_out * k * k / 1e9


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="glow")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args(argv)
    import nflow.models as models
    kind, kwargs, _, _ = WORKLOADS[MODELS[args.model]]
    model = {"glow": models.Glow, "realnvp": models.RealNVP}[kind](**kwargs)
    x = nflow.tensor(np.random.default_rng(0).uniform(size=(args.batch, 1, 28, 28)).astype(np.float32))
    optimizer = nflow.optim.Adam(model.parameters(), lr=1e-4)

    def step():
        optimizer.zero_grad()
        loss = F.mean(-model.log_prob(x))
        loss.backward()
        optimizer.step()

    totals, counts = collections.defaultdict(float), collections.Counter()
    conv, epilogue = kernel_module("conv"), kernel_module("bias_relu")
    originals = [(conv, name, _timed(conv, name, conv_key, totals, counts))
                 for name in ("forward", "backward", "relu_backward")]
    originals += [(epilogue, name, _timed(epilogue, name, epilogue_key, totals, counts))
                  for name in ("forward", "backward")]
    try:
        step(), step()
        totals.clear(), counts.clear()
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        per_step = (time.perf_counter() - start) / args.steps
    finally:
        for module, name, original in originals:
            setattr(module, name, original)
    print(f"{args.model}, batch {args.batch}, {nflow.get_backend()} backend: {1e3 * per_step:.0f} ms a step "
          f"(mean of {args.steps})")
    print("| what | shape (C_in, C_out, k, H) or (rows, cols) | calls | ms a step | share | GFLOP/s |")
    print("|---|---|---|---|---|---|")
    for key, total in sorted(totals.items(), key=lambda kv: -kv[1]):
        ms = 1e3 * total / args.steps
        calls = counts[key] // args.steps
        rate = ""
        if key[1] == "conv":
            work = conv_gflop(key, args.batch) * (1 if key[0] == "forward" else 2) * calls
            rate = f"{work / (ms / 1e3):.0f}"
        print(f"| {key[1]} {key[0]} | {key[2:]} | {calls} | {ms:.1f} | {total / args.steps / per_step:.0%} | {rate} |")
    rest = per_step - sum(totals.values()) / args.steps
    print(f"| everything else | | | {1e3 * rest:.1f} | {rest / per_step:.0%} | |")


if __name__ == "__main__":
    main()
