"""Issue 15: data-parallel training measured on 1 and 2 ranks of this machine, and projected to a cluster.

    python -m benchmarks.distributed_scaling [--steps N] [--batch B] [--no-projection]

**Measured.** ``mpiexec -n 1`` and then ``mpiexec -n 2`` run the same worker (this module, ``--worker``), one
OpenBLAS/Numba thread per rank: a float32 ``Glow((1, 28, 28), levels=2, steps=4, hidden=128)`` trains on uniform
[0, 1) images, B = ``--batch`` per rank, for ``--steps`` timed steps after 2 warm-up steps. Each step is the
trainer's: forward + backward (:func:`nflow.reversible.nll_and_backward`), a barrier (so the wait for the slower
rank is counted apart from the network), the one all-reduce of all gradients
(:func:`nflow.distributed.average_gradients`), clipping and Adam. Reported: medians over the steps of rank 0,
images/s = N·B / step time, and the all-reduce's share of the step. On a 2-core machine two ranks can at best
double the images/s; the load of the machine (other processes) is printed before each run, as it skews both.

**Projected** (``--no-projection`` to skip): the Glow CIFAR-10 configuration (Kingma & Dhariwal 2018: L=3, K=32,
width 512), its parameters counted by nflow itself; ring all-reduce of its float32 gradient,

    t_allreduce(N) = 2 (N-1)/N · bytes / bandwidth  +  2 (N-1) · α,

(bandwidth 10 or 100 Gbit/s; α = 25 µs per message, a TCP/Ethernet hop: the ring sends 2(N-1) messages in
sequence), against the compute time of one rank's step: one core of this CPU (measured, see
``compute_per_step``), a 64-core node (that ÷ 64) and a GPU (counted FLOPs at a stated rate).
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

SHAPE, LEVELS, STEPS, HIDDEN = (1, 28, 28), 2, 4, 128
WARMUP_STEPS = 2
CIFAR = dict(input_shape=(3, 32, 32), levels=3, steps=32, hidden=512)
BANDWIDTHS_GBIT = (10, 100)
RANKS = (8, 64, 512)
LATENCY_S = 25e-6          # α: one message over TCP on Ethernet, order of magnitude
BYTES_PER_GRADIENT = 4     # float32
CIFAR_BATCH_PER_RANK = 64  # openai/glow's n_batch_train for CIFAR-10 (per GPU)


def worker(steps, batch):
    """One rank's timed steps; rank 0 prints a JSON line of medians."""
    import nflow
    from nflow.distributed import average_gradients, mpi_world, using
    from nflow.models import Glow
    from nflow.optim import Adam, clip_grad_norm
    from nflow.reversible import nll_and_backward

    comm = mpi_world()
    nflow.seed(0)
    model = Glow(SHAPE, levels=LEVELS, steps=STEPS, hidden=HIDDEN)
    optimizer = Adam(model.parameters(), lr=1e-4)
    x = np.random.default_rng(comm.rank).uniform(0, 1, (batch,) + SHAPE).astype(np.float32)
    rows = []
    with using(comm):
        for i in range(WARMUP_STEPS + steps):
            t0 = time.perf_counter()
            optimizer.zero_grad()
            loss = nll_and_backward(model, nflow.tensor(x), reversible=False)["loss"]
            t1 = time.perf_counter()
            comm.barrier()
            t2 = time.perf_counter()
            average_gradients(comm, model.parameters(), extra=[loss])
            t3 = time.perf_counter()
            clip_grad_norm(model.parameters(), 100.0)
            optimizer.step()
            t4 = time.perf_counter()
            if i >= WARMUP_STEPS:
                rows.append((t4 - t0, t1 - t0, t2 - t1, t3 - t2, t4 - t3))
    med = np.median(np.asarray(rows), axis=0)
    if comm.rank == 0:
        print(json.dumps({"ranks": comm.size, "batch_per_rank": batch, "step_s": med[0], "compute_s": med[1],
                          "wait_s": med[2], "allreduce_s": med[3], "update_s": med[4],
                          "gradient_bytes": int(sum(p.data.nbytes for p in model.parameters())),
                          "images_per_s": comm.size * batch / med[0]}))


def find_mpiexec():
    import shutil
    import sysconfig
    for directory in (os.path.dirname(sys.executable), sysconfig.get_path("scripts")):
        candidate = os.path.join(directory, "mpiexec")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("mpiexec")


def measure(ranks, steps, batch):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    load = os.getloadavg()[0]
    out = subprocess.run([find_mpiexec(), "-n", str(ranks), sys.executable, "-m", "benchmarks.distributed_scaling",
                          "--worker", "--steps", str(steps), "--batch", str(batch)],
                         env=env, check=True, capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    result["load_before"] = round(load, 2)
    return result


def cpu_name():
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def compute_per_step(batch, repeats=2):
    """Seconds of one training step of the CIFAR Glow for ``batch`` images on one core of this machine.

    A K=32 model's step is measured as K=2's (same L, width, input) times 16: the step's cost is the sum of its
    K steps of flow per level (the squeezes, splits and prior are a small part). Timed at batch 4 and scaled
    linearly to ``batch`` (the convolutions' cost is linear in the batch)."""
    import nflow
    from nflow.models import Glow
    from nflow.reversible import nll_and_backward

    k_measured, b_measured = 2, 4
    nflow.seed(0)
    model = Glow(**dict(CIFAR, steps=k_measured))
    x = np.random.default_rng(0).uniform(0, 1, (b_measured,) + CIFAR["input_shape"]).astype(np.float32)
    times = []
    for i in range(repeats + 1):
        model.zero_grad()
        t0 = time.perf_counter()
        nll_and_backward(model, nflow.tensor(x), reversible=False)
        if i:
            times.append(time.perf_counter() - t0)
    measured = float(np.median(times))
    return measured * (CIFAR["steps"] / k_measured) * (batch / b_measured), measured


def forward_flops_per_image(input_shape, levels, steps, hidden):
    """Multiply-adds × 2 of the convolutions of one image's forward pass through Glow: per step of flow at a
    level with C channels on H×W (after the squeeze), the coupling net 3x3 (C/2 → w), 1x1 (w → w), 3x3 (w → C:
    shift and log-scale of the other half) and the 1x1 invertible convolution C × C; half the channels split off
    after every level but the last. ActNorm, the coupling's element-wise work and the prior are left out (a few %)."""
    c, h, w = input_shape
    total = 0
    for level in range(levels):
        c, h, w = c * 4, h // 2, w // 2
        per_step = 9 * (c // 2) * hidden + hidden * hidden + 9 * hidden * c + c * c
        total += steps * 2 * h * w * per_step
        if level < levels - 1:
            c //= 2
    return total


# One GPU's sustained float32 rate on these convolutions: 40 % of a V100's 15.7 TFLOP/s peak (the GPU the Glow
# paper trained on), a typical efficiency for convolutions of width 512 at batch 64 in cuDNN.
GPU_SUSTAINED_FLOPS = 0.4 * 15.7e12
TRAIN_TO_FORWARD = 3   # backward ≈ 2 × forward (gradients of inputs and of weights)
CPU_NODE_CORES = 64    # one cluster node's cores, as the third kind of rank (ideal scaling of one core's time)


def projection():
    """The projection table (markdown), with its inputs stated. Run it with one BLAS/Numba thread."""
    from nflow.models import Glow
    n_params = Glow(**CIFAR).n_parameters()
    nbytes = n_params * BYTES_PER_GRADIENT
    cpu_step, measured = compute_per_step(CIFAR_BATCH_PER_RANK)
    flops = TRAIN_TO_FORWARD * forward_flops_per_image(**CIFAR) * CIFAR_BATCH_PER_RANK
    gpu_step = flops / GPU_SUSTAINED_FLOPS
    node_step = cpu_step / CPU_NODE_CORES
    lines = [f"Glow CIFAR-10 (L=3, K=32, width 512): {n_params:,} parameters (nflow's count), {nbytes / 1e6:.1f} MB of "
             f"float32 gradient per all-reduce. Compute per rank and step, batch {CIFAR_BATCH_PER_RANK} per rank: "
             f"**one core of this CPU {cpu_step:.1f} s** (measured: K=2 at batch 4 took {measured:.3f} s; × 16 for "
             f"K=32, × 16 for batch 64 — {flops / cpu_step / 1e9:.0f} GFLOP/s); **a {CPU_NODE_CORES}-core node "
             f"{node_step:.2f} s** (that time ÷ {CPU_NODE_CORES}, perfect scaling: a lower bound); **a GPU "
             f"{gpu_step:.2f} s** ({TRAIN_TO_FORWARD} × {forward_flops_per_image(**CIFAR) / 1e9:.1f} GFLOP forward "
             f"per image × {CIFAR_BATCH_PER_RANK} = {flops / 1e12:.2f} TFLOP at {GPU_SUSTAINED_FLOPS / 1e12:.1f} "
             f"TFLOP/s, 40 % of a V100). Ring all-reduce with α = {LATENCY_S * 1e6:.0f} µs per message; share = "
             "t_allreduce / (t_allreduce + t_compute), nothing overlapped.", "",
             "| ranks N | link | ring all-reduce | share, 1-core rank | share, 64-core node | share, GPU |",
             "|---|---|---|---|---|---|"]
    for n in RANKS:
        for gbit in BANDWIDTHS_GBIT:
            t = 2 * (n - 1) / n * nbytes / (gbit * 1e9 / 8) + 2 * (n - 1) * LATENCY_S
            shares = " | ".join(f"{t / (t + c):.1%}" for c in (cpu_step, node_step, gpu_step))
            lines.append(f"| {n} | {gbit} Gbit/s | {t * 1e3:.0f} ms | {shares} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=16, help="images per rank")
    parser.add_argument("--no-projection", action="store_true")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--projection-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.steps, args.batch)
    if args.projection_only:
        return print(projection())
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores; one BLAS/Numba thread per rank; Glow{SHAPE} L={LEVELS} "
          f"K={STEPS} width {HIDDEN}, float32, {args.batch} images per rank, median of {args.steps} steps")
    print("| ranks | load before | step s | forward+backward s | wait s | all-reduce s | all-reduce share | "
          "images/s |")
    print("|---|---|---|---|---|---|---|---|")
    base = None
    for ranks in (1, 2):
        r = measure(ranks, args.steps, args.batch)
        base = base or r["images_per_s"]
        print(f"| {ranks} | {r['load_before']} | {r['step_s']:.3f} | {r['compute_s']:.3f} | {r['wait_s']:.3f} | "
              f"{r['allreduce_s'] * 1e3:.2f} ms ({r['gradient_bytes'] / 1e6:.2f} MB) | "
              f"{r['allreduce_s'] / r['step_s']:.2%} | {r['images_per_s']:.1f} ({r['images_per_s'] / base:.2f}×) |",
              flush=True)
    if not args.no_projection:   # in a child with one BLAS/Numba thread, as the ranks had
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
        print(f"\nload before: {os.getloadavg()[0]:.2f}")
        print(subprocess.run([sys.executable, "-m", "benchmarks.distributed_scaling", "--projection-only"], env=env,
                             check=True, capture_output=True, text=True).stdout, end="")


if __name__ == "__main__":
    main()
