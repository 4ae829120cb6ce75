"""NICE's training step against the floor its own matrix products set: how much of the step is anything but GEMM.

    python -m benchmarks.nice_floor [--batch 256] [--repeats 7]

The runner's NICE (4 couplings, 5 hidden layers of 1000, MNIST-shaped, float32) on the numba backend: the whole
step (forward, backward, Adam), forward + backward, forward alone; then the same GEMMs with the same shapes and
operand layouts as bare NumPy products on random arrays (forward x Wᵀ; backward g W and gᵀ x). Step minus
(forward + backward) is Adam; forward minus its GEMMs, and backward minus theirs, are what the graph, the bias,
the ReLU and the couplings add. Medians after three warm-up steps.
"""
import argparse
import os

import numpy as np

import nflow
import nflow.functional as F
from benchmarks.machine import median_time
from benchmarks.workloads import WORKLOADS


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=WORKLOADS["nice-mnist"][2])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    import nflow.models as models
    kwargs = WORKLOADS["nice-mnist"][1]
    model = models.NICE(**kwargs)
    rng = np.random.default_rng(0)
    x = nflow.tensor(rng.uniform(size=(args.batch, 1, 28, 28)).astype(np.float32))
    optimizer = nflow.optim.Adam(model.parameters(), lr=1e-4)

    def forward():
        return F.mean(-model.log_prob(x))

    def forward_backward():
        optimizer.zero_grad()
        forward().backward()

    def step():
        forward_backward()
        optimizer.step()

    ms = {name: 1e3 * median_time(fn, args.repeats, warmup=3)
          for name, fn in (("step", step), ("forward + backward", forward_backward), ("forward", forward))}
    # the same products on random arrays: every Linear of every coupling, (in, out) as the model has them
    weights = [p.data for name, p in model.named_parameters() if name.endswith("weight") and p.data.ndim == 2]
    inputs = [rng.standard_normal((args.batch, w.shape[1])).astype(np.float32) for w in weights]
    grads = [rng.standard_normal((args.batch, w.shape[0])).astype(np.float32) for w in weights]
    gemm_forward = 1e3 * median_time(lambda: [a @ w.T for a, w in zip(inputs, weights)], args.repeats)
    gemm_backward = 1e3 * median_time(lambda: [(g @ w, g.T @ a) for a, w, g in zip(inputs, weights, grads)],
                                      args.repeats)
    backward = ms["forward + backward"] - ms["forward"]
    print(f"NICE {kwargs}, batch {args.batch}, {nflow.get_backend()} backend, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}, load {os.getloadavg()[0]:.2f}; "
          f"ms, medians of {args.repeats}")
    print("| part | nflow | its GEMMs alone | the rest |")
    print("|---|---|---|---|")
    print(f"| forward | {ms['forward']:.1f} | {gemm_forward:.1f} | {ms['forward'] - gemm_forward:.1f} |")
    print(f"| backward | {backward:.1f} | {gemm_backward:.1f} | {backward - gemm_backward:.1f} |")
    print(f"| Adam | {ms['step'] - ms['forward + backward']:.1f} | | |")
    print(f"| step | {ms['step']:.1f} | {gemm_forward + gemm_backward:.1f} | |")


if __name__ == "__main__":
    main()
