"""The NumPy twins: the readable reference of every hand-written kernel, written with ``xp`` so the same
code also runs on CuPy arrays. The ``numpy`` backend runs these; the tests hold the Numba and CUDA kernels
to them."""
