"""Numba kernels for the CPU; each module holds the kernels of one layer beside their NumPy twins."""
