"""Why a convolution costs more inside a model than alone: the same conv timed back to back, after its operands
have left the caches, and after OpenBLAS's threads have idled.

    python -m benchmarks.conv_cold [--batch 64] [--repeats 15]

The conv is Glow's first coupling conv at 14×14 (2 -> 256 channels, 3x3: a GEMM with inner dimension 18 that
writes a 12.8 MB output, the im2col twin's path). Before each timed call: nothing (back to back, everything warm);
a sum over 64 MB (the caches swept, as the other layers of a step do); one serial Numba pass over a 256 × 12544
array (what runs between a step's GEMMs); a 5 ms sleep (OpenBLAS's worker threads stop spinning and sleep).
"""
import argparse
import os
import statistics
import time

import numpy as np

from nflow.kernels.cpu import bias_relu
from nflow.kernels.reference import conv

SWEEP_BYTES = 64 << 20
IDLE_SECONDS = 0.005


def median_ms(fn, before, repeats):
    times = []
    for _ in range(repeats):
        before()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, args.batch, 14, 14)).astype(np.float32)
    w = rng.standard_normal((256, 2, 3, 3)).astype(np.float32)
    sweep = np.ones(SWEEP_BYTES // 4, dtype=np.float32)
    activation = np.zeros((256, args.batch * 14 * 14), dtype=np.float32)
    bias = np.zeros(256, dtype=np.float32)
    bias_relu.forward(activation, bias)  # compile (or load) the Numba kernel before timing
    run = lambda: conv.forward(x, w, backward_follows=True)  # noqa: E731
    print(f"2 -> 256 conv, 3x3, 14x14, batch {args.batch}; OPENBLAS_NUM_THREADS="
          f"{os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}; load {os.getloadavg()[0]:.2f}; "
          f"ms, median of {args.repeats}")
    for label, before in (("back to back", lambda: None), ("after a 64 MB sweep", lambda: sweep.sum()),
                          ("after a Numba pass", lambda: bias_relu.forward(activation, bias)),
                          ("after 5 ms idle", lambda: time.sleep(IDLE_SECONDS))):
        print(f"| {label} | {median_ms(run, before, args.repeats):.2f} |")


if __name__ == "__main__":
    main()
