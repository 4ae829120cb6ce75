"""What the nflow-vs-PyTorch runner measures: the workloads, the environment settings, the thread counts and
the benchmark batch (``python -m benchmarks``; see ``benchmarks/run.py``)."""
import gzip
import os
from pathlib import Path

from benchmarks.machine import OPENBLAS_CORE_NEEDS

ROOT = Path(__file__).resolve().parents[1]
THREADS = 2
THREAD_ENV = {"OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "NUMBA_NUM_THREADS": "2"}
SETTINGS = {
    "default": {},
    "tuned": {"OPENBLAS_CORETYPE": "SkylakeX", "MALLOC_MMAP_THRESHOLD_": str(1 << 30),
              "MALLOC_TRIM_THRESHOLD_": str(1 << 31)},
    # one variable at a time, and OpenBLAS's AVX2 kernels forced (run with --settings to include these)
    "skylakex": {"OPENBLAS_CORETYPE": "SkylakeX"},
    "malloc": {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(1 << 31)},
    "avx2": {"OPENBLAS_CORETYPE": "Haswell"},
}
CLEARED_ENV = ("OPENBLAS_CORETYPE", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
LR = 1e-4
# torch's best documented Adam on the CPU: the fused kernel (measured here on NICE's 20 M parameters: 0.05 s a
# step, against 0.8 s for the default per-parameter loop and 1.5 s for foreach).
TORCH_FUSED_ADAM = True
SAMPLES = 64
QUICK_SHRINK = 4  # --quick: batches and sample counts divided by this (the architectures stay the same)
# name -> (model kind, constructor kwargs (nflow's), batch, ops)
WORKLOADS = {
    "glow-mnist": ("glow", dict(input_shape=(1, 28, 28), levels=2, steps=8, hidden=256), 64,
                   ("log_prob", "train_step", "sample")),
    "realnvp-mnist": ("realnvp", dict(input_shape=(1, 28, 28), scales=2, hidden=64), 64,
                      ("log_prob", "train_step", "sample")),
    "nice-mnist": ("nice", dict(input_shape=(1, 28, 28), couplings=4, hidden=1000, depth=5), 256,
                   ("log_prob", "train_step", "sample")),
    "glow-K16": ("glow", dict(input_shape=(1, 28, 28), levels=2, steps=16, hidden=256), 64, ("train_step",)),
    "glow-K32": ("glow", dict(input_shape=(1, 28, 28), levels=2, steps=32, hidden=256), 64, ("train_step",)),
    "glow-b16": ("glow", dict(input_shape=(1, 28, 28), levels=2, steps=8, hidden=256), 16, ("train_step",)),
    "glow-b256": ("glow", dict(input_shape=(1, 28, 28), levels=2, steps=8, hidden=256), 256, ("train_step",)),
}
DEPTHS = {8: "glow-mnist", 16: "glow-K16", 32: "glow-K32"}
# (value, workload, how many times glow-mnist's work it does): issue 12's depth and batch scaling
DEPTH_SERIES = tuple((k, w, k / 8) for k, w in DEPTHS.items())
BATCH_SERIES = ((16, "glow-b16", 16 / 64), (64, "glow-mnist", 1.0), (256, "glow-b256", 256 / 64))
COMPILE_WORKLOADS = ("glow-mnist", "realnvp-mnist", "nice-mnist")  # deeper Glows: compile time grows with K


def setting_unavailable(setting, flags):
    """Why ``setting`` cannot run on a CPU with these feature flags (an illegal instruction, not a slow run), or
    None when it can."""
    core = SETTINGS[setting].get("OPENBLAS_CORETYPE")
    needs = OPENBLAS_CORE_NEEDS.get(core)
    if needs and needs not in flags:
        return f"OPENBLAS_CORETYPE={core} runs {needs} instructions, which this CPU does not have"
    return None


def seeded_model(workload):
    """The workload's nflow model, built after ``nflow.seed(0)`` so every script gets the same weights (in the
    current backend: call it inside ``nflow.backend(...)`` for another)."""
    import nflow
    from nflow.models import NICE, Glow, RealNVP

    kind, kwargs, _, _ = WORKLOADS[workload]
    nflow.seed(0)
    return {"glow": Glow, "realnvp": RealNVP, "nice": NICE}[kind](**kwargs)


def mnist_batch(n, seed=0):
    """n dequantized MNIST training images in [0, 1) as float32 (N, 1, 28, 28), read from the IDX file in
    ``$NFLOW_DATA``; uniform noise when it does not hold it (said in the output)."""
    import numpy as np
    rng = np.random.default_rng(seed)
    for folder in (os.environ.get("NFLOW_DATA"),):
        if not folder:
            continue
        for name in ("train-images-idx3-ubyte.gz", "train-images-idx3-ubyte"):
            path = Path(folder) / name
            if path.exists():
                raw = path.read_bytes()
                raw = gzip.decompress(raw) if name.endswith(".gz") else raw
                images = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(-1, 1, 28, 28)
                pick = images[rng.choice(len(images), size=n, replace=False)].astype(np.float32)
                return ((pick + rng.uniform(size=pick.shape)) / 256).astype(np.float32), "MNIST"
    return rng.uniform(size=(n, 1, 28, 28)).astype(np.float32), "uniform noise (MNIST not found)"
