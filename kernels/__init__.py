"""nflow's hand-written kernels, installed as ``nflow.kernels``: Numba in ``cpu``, CUDA C in ``cuda``."""
