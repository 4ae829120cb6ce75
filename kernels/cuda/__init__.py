"""CUDA kernels for the GPU: ``.cu`` sources in this folder, compiled through CuPy once and cached."""
