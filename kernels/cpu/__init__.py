"""Numba kernels for the CPU; each module holds the kernels of one family, beside the NumPy twin it is tested
against (``kernels/reference``).

``PARALLEL``: whether the kernels are compiled with ``parallel=True``. Their outer loops are written with
``prange`` over the batch (or the channels, for ActNorm's per-channel sums), the axis a parallel build splits
across threads. They are built serial because a parallel build did not pay inside a training step on 2 cores:
each call is a fraction of a millisecond of work, OpenMP's idle workers spin and compete with OpenBLAS's
threads in the GEMMs that follow every kernel, and a parallel build doubles Numba's compile time. The only
setting under which it paid, ``OMP_WAIT_POLICY=passive`` before start, is process-wide and not a library's to
impose. The measurements are in benchmarks/RESULTS.md ("Kernels (issue 4)").

Flipping ``PARALLEL`` needs the on-disk cache cleared (``kernels/cpu/__pycache__``): Numba's cache is keyed on
each kernel's own source file, not on this flag.
"""
PARALLEL = False
