"""Where arrays live and which kernels run: the one module that knows about NumPy vs CuPy.

Three backends share one tensor core:

- ``"numpy"``: NumPy arrays, every op written in plain NumPy. The readable reference.
- ``"numba"``: NumPy arrays, with hand-written Numba kernels on the flow-specific hot paths.
- ``"cupy"``:  CuPy arrays on an NVIDIA GPU, with hand-written CUDA kernels on the hot paths.

Ops never import NumPy or CuPy by name to do arithmetic; they ask :func:`get_array_module`
for the module that owns their input arrays (``xp``) and call ``xp.exp``, ``xp.matmul`` and so on.
Only a hand-written kernel has a backend-specific code path.
"""
import contextlib

import numpy as np

BACKENDS = ("numpy", "numba", "cupy")

try:  # CuPy is optional: importing nflow must work on a machine without it or without a GPU.
    import cupy as _cupy

    try:
        _CUPY_DEVICES = _cupy.cuda.runtime.getDeviceCount()
    except Exception:  # CUDA driver missing or broken: CuPy imports but cannot run.
        _CUPY_DEVICES = 0
except ImportError:
    _cupy = None
    _CUPY_DEVICES = 0

try:
    import numba as _numba  # noqa: F401  (only its presence is checked here)

    _NUMBA_AVAILABLE = True
except ImportError:
    _NUMBA_AVAILABLE = False


def cupy_available():
    """True when CuPy imports and sees at least one CUDA device."""
    return _cupy is not None and _CUPY_DEVICES > 0


def numba_available():
    return _NUMBA_AVAILABLE


def _default_backend():
    # The fastest backend this machine can run.
    if cupy_available():
        return "cupy"
    if numba_available():
        return "numba"
    return "numpy"


_current = _default_backend()


def _check_name(name):
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {BACKENDS}")
    if name == "cupy" and not cupy_available():
        why = "CuPy is not installed" if _cupy is None else "CuPy sees no CUDA device"
        raise RuntimeError(f"backend 'cupy' is unavailable: {why}. "
                           "Install the gpu extra (pip install 'nflow[gpu]') on a machine with an NVIDIA GPU, "
                           "or use 'numba' or 'numpy'.")
    if name == "numba" and not numba_available():
        raise RuntimeError("backend 'numba' is unavailable: Numba is not installed (pip install numba)")


def set_backend(name):
    """Select the backend for arrays created from now on and for the kernels ops dispatch to."""
    global _current
    _check_name(name)
    _current = name


def get_backend():
    return _current


@contextlib.contextmanager
def backend(name):
    """``with nflow.backend("numpy"): ...`` runs a block on one backend and restores the previous one."""
    global _current
    _check_name(name)
    previous, _current = _current, name
    try:
        yield
    finally:
        _current = previous


def get_array_module(*arrays):
    """NumPy or CuPy, whichever owns ``arrays``; mixing the two is an error, never a silent copy."""
    if _cupy is None:
        return np
    kinds = {isinstance(a, _cupy.ndarray) for a in arrays if hasattr(a, "shape")}
    if kinds == {True, False}:
        raise TypeError("mixing NumPy and CuPy arrays in one op; move them to one device first "
                        "(nflow.backend.to_device)")
    return _cupy if kinds == {True} else np


def array_module_for_backend(name=None):
    """The array module that new arrays are created with on backend ``name`` (default: the current one)."""
    name = name or _current
    return _cupy if name == "cupy" else np


def is_cupy_array(a):
    return _cupy is not None and isinstance(a, _cupy.ndarray)


def to_device(array, name=None):
    """Move an array to where backend ``name`` keeps its arrays (host for numpy/numba, GPU for cupy)."""
    name = name or _current
    if name == "cupy":
        _check_name(name)
        return _cupy.asarray(array)
    return to_numpy(array)


def to_numpy(array):
    """A NumPy array on the host, whatever the input lives on."""
    if is_cupy_array(array):
        return _cupy.asnumpy(array)
    return np.asarray(array)
