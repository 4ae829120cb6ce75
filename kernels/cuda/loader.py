"""Reading, specialising and compiling the ``.cu`` sources of this folder; CuPy is imported only here, lazily.

A source is written once for a type ``real_t``; :func:`source` inlines the folder's headers it includes
(``block_reduce.cuh``) and puts ``#define real_t float`` (or ``double``) in front of the file's text, and
:func:`function` compiles that with ``cupy.RawModule`` (NVRTC) the first time a (file, dtype) pair is asked
for and keeps the module: every later launch reuses it. The tests compile the same text with ``nvcc --ptx``
(tests/test_cuda_sources.py), so a syntax or type error shows without a GPU.
"""
import functools
from importlib import resources

import numpy as np

CTYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
THREADS = 256          # threads per block: a multiple of the warp size (the block reductions assume it)
MAX_BLOCKS = 65535     # grid-stride loops cover the rest; also the limit of gridDim.y


def sources():
    """The names of the ``.cu`` files shipped in this package."""
    return sorted(p.name for p in resources.files(__package__).iterdir() if p.name.endswith(".cu"))


def _read(filename):
    return (resources.files(__package__) / filename).read_text(encoding="utf-8")


def _inline_includes(text):
    """Replace each ``#include "X.cuh"`` line naming a header of this folder with that header's text (one level):
    the shared device code (``block_reduce.cuh``) is written once, and NVRTC needs no include path."""
    lines = []
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith('#include "') and stripped.endswith('.cuh"'):
            lines.append(_read(stripped[len('#include "'):-1]))
        else:
            lines.append(line)
    return "".join(lines)


def source(filename, dtype):
    """The text of ``filename``, its headers inlined, with ``real_t`` defined as the C type of ``dtype``."""
    dtype = np.dtype(dtype)
    if dtype not in CTYPES:
        raise TypeError(f"CUDA kernel {filename}: needs float32 or float64 arrays, got {dtype}")
    return f"#define real_t {CTYPES[dtype]}\n" + _inline_includes(_read(filename))


@functools.lru_cache(maxsize=None)
def _module(filename, dtype_name):
    import cupy
    return cupy.RawModule(code=source(filename, dtype_name), options=("--std=c++14",))


def function(filename, name, dtype):
    """The compiled kernel ``name`` of ``filename`` for ``dtype`` (compiled on first use, then cached)."""
    return _module(filename, np.dtype(dtype).name).get_function(name)


def blocks(size):
    """Blocks for a grid-stride loop over ``size`` elements."""
    return max(1, min(MAX_BLOCKS, (int(size) + THREADS - 1) // THREADS))
