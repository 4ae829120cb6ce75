"""Which implementation of each kernel family runs on which backend.

Every family has one module per implementation, all exposing the same functions with the same signatures:

- ``affine_coupling``, ``actnorm``: ``forward``, ``inverse``, ``forward_backward``, ``inverse_backward``;
- ``gaussian``: ``standard_log_prob``, ``standard_log_prob_backward``;
- ``conv``: ``forward`` (optionally with the bias + ReLU epilogue), ``backward``, ``relu_backward`` (the
  convolution's GEMMs, channel-major);
- ``additive_coupling``, ``squeeze``, ``invconv``, ``lu``, ``bias_relu``, ``adam``: see each family's NumPy twin in
  ``kernels/reference``.

The table below is the only place that decides. It holds module *names*, imported on first use: the CUDA
wrappers import CuPy, and nothing may import CuPy unless the ``cupy`` backend is asked for. The ``numpy``
backend always runs the NumPy twin in ``kernels/reference``; a family without a hand-written kernel for a
backend runs its twin there too (the twins are written with ``xp`` and run on CuPy arrays as well).
"""
import importlib

from nflow.backend import get_backend

_REFERENCE = "nflow.kernels.reference."
_CPU = "nflow.kernels.cpu."
_CUDA = "nflow.kernels.cuda."

_TABLE = {
    "affine_coupling": {"numpy": _REFERENCE + "affine_coupling", "numba": _CPU + "affine_coupling",
                        "cupy": _CUDA + "affine_coupling"},
    "actnorm": {"numpy": _REFERENCE + "actnorm", "numba": _CPU + "actnorm", "cupy": _CUDA + "actnorm"},
    "gaussian": {"numpy": _REFERENCE + "gaussian", "numba": _CPU + "gaussian", "cupy": _REFERENCE + "gaussian"},
    # conv on the CPU: k² GEMMs over shifted windows of the padded input (no im2col buffer; benchmarks/RESULTS.md,
    # issue 12), on nflow's own micro-kernels and threads for RealNVP-sized networks (kernels/cpu/conv_jit.py). On CuPy the twin's im2col (its strided block copies are the GPU's cuBLAS-friendly layout; the
    # shifted windows need a strided-GEMM call CuPy does not expose).
    "conv": {"numpy": _REFERENCE + "conv", "numba": _CPU + "conv", "cupy": _REFERENCE + "conv"},
    "additive_coupling": {"numpy": _REFERENCE + "additive_coupling", "numba": _CPU + "additive_coupling",
                          "cupy": _CUDA + "additive_coupling"},
    "squeeze": {"numpy": _REFERENCE + "squeeze", "numba": _CPU + "squeeze", "cupy": _CUDA + "squeeze"},
    "invconv": {"numpy": _REFERENCE + "invconv", "numba": _CPU + "invconv", "cupy": _CUDA + "invconv"},
    "lu": {"numpy": _REFERENCE + "lu", "numba": _CPU + "lu", "cupy": _CUDA + "lu"},
    "bias_relu": {"numpy": _REFERENCE + "bias_relu", "numba": _CPU + "bias_relu", "cupy": _CUDA + "bias_relu"},
    "adam": {"numpy": _REFERENCE + "adam", "numba": _CPU + "adam", "cupy": _CUDA + "adam"},
}

FAMILIES = tuple(_TABLE)


def module_name(family, backend=None):
    """The dotted name of the module implementing ``family`` on ``backend`` (default: the current one)."""
    if family not in _TABLE:
        raise KeyError(f"unknown kernel family {family!r}; the families are {FAMILIES}")
    return _TABLE[family][backend or get_backend()]


def kernel_module(family, backend=None):
    """The module implementing ``family`` on ``backend`` (default: the current one), imported on first use."""
    return importlib.import_module(module_name(family, backend))
