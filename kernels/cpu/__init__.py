"""Numba kernels for the CPU; each module holds the kernels of one layer beside their NumPy twins.

``PARALLEL``: whether the kernels are compiled with ``parallel=True``. Their outer loops are written with
``prange`` over the batch (or the channels, for ActNorm's per-channel sums), the axis a parallel build splits
across threads; measured on this project's 2-core machines (benchmarks/RESULTS.md, "Kernels (issue 4)"), it
does not pay, so they are built serial:

- at Glow's sizes one call is 0.1-0.5 ms of work; two threads gave 0.29 ms against 0.27 ms on one (affine
  coupling forward, N=64, C=16, 14×14, float32, ``OMP_WAIT_POLICY=passive``);
- with Numba's default OpenMP layer the idle workers spin after each parallel region; on a loaded machine the
  same call then took 12 ms (median) instead of 0.27 ms, and the spinning threads compete with OpenBLAS's
  threads in the GEMMs that follow each kernel in a training step;
- a parallel build doubles Numba's compile time (8.9 s against 4.3 s for the coupling forward).

Measured again on a quiet machine (load < 0.5, 2026-11-22 11:30 UTC): a parallel build runs the coupling
kernels 1.5-1.9x faster alone (``python -m benchmarks.kernels``, last table), but inside a Glow training step
(batch 64, 2 threads) the step took 1.63 s against 0.73 s serial with the default spin-waiting OpenMP workers,
0.91 s with Numba's ``workqueue`` layer, and 0.70 s only with ``OMP_WAIT_POLICY=passive`` set before start, a
process-wide setting a library should not impose. Serial stays the default.

Flipping ``PARALLEL`` needs the on-disk cache cleared (``kernels/cpu/__pycache__``): Numba's cache is keyed on
each kernel's own source file, not on this flag.
"""
PARALLEL = False
