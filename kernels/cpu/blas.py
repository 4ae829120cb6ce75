"""GEMM on sub-matrices of NumPy arrays, row-major, with leading dimensions and offsets stated, and ``beta``,
through the very BLAS library NumPy's own ``matmul`` calls:

    C[m×n] ← α · op(A)[m×k] · op(B)[k×n] + β · C

``numpy.matmul`` covers most products, but not two things the shifted-GEMM convolution (``kernels/cpu/conv.py``)
needs: accumulating into an existing C (β = 1, no temporary and no extra pass to add it) and operands that are
windows of a larger buffer whose rows are longer than the window (a leading dimension larger than the row length).
BLAS's ``cblas_?gemm`` does both; NumPy does not expose it, so this module finds it.

Why NumPy's copy of BLAS and not SciPy's (``scipy.linalg.cython_blas``, the documented route): SciPy's wheels
bundle a second OpenBLAS with its own thread pool. Measured here (RealNVP on 2 threads, issue 12): alternating
GEMMs between the two libraries made the training step 3.4× slower, each library's idle threads spinning while
the other's worked; with one thread each there was nothing to fight over and the same code was 20 % faster.

Where: NumPy's wheels ship OpenBLAS as a shared library beside the package (``numpy.libs`` on Linux), with its
symbols renamed (``scipy_cblas_sgemm64_``: 64-bit integers). :func:`_numpy_blas` looks for it among the shared
libraries this process has loaded (``/proc/self/maps``) and tries the known names; :data:`LIBRARY` is the one it
took. Where it is not found (another platform, a NumPy built against MKL or Accelerate), :data:`AVAILABLE` is False
with :data:`UNAVAILABLE_REASON`, and the convolution falls back to its im2col twin.

Which library comes first matters, because another may be loaded by then: Numba's first compilation imports
``scipy.linalg.cython_blas`` (to offer ``np.dot`` inside kernels), which maps SciPy's copy, ``scipy.libs/
libscipy_openblas-….so``, exporting ``scipy_cblas_sgemm``. An earlier version ranked "inside site-packages" first,
which both copies are, so the pick followed the order of a Python set: after a Glow had compiled its kernels in the
same process, RealNVP's convolutions often ran on SciPy's copy while ``numpy.matmul`` ran on NumPy's, and the two
thread pools fought (training step 0.72–0.85 s → 1.7–3.6 s, issue 12). :func:`_rank` now puts NumPy's own folders first,
then system libraries, then the copies other wheels bundle, and breaks ties by path, so the pick no longer depends
on what was loaded before or on the hash seed.
"""
import ctypes
from pathlib import Path

import numpy as np

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112  # the CBLAS enums
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))  # what BLAS has a GEMM for
# (symbol, integer type): NumPy >= 2 wheels (ILP64, renamed), then the plain names of other builds
_CANDIDATES = (("scipy_cblas_{}gemm64_", ctypes.c_int64), ("cblas_{}gemm64_", ctypes.c_int64),
               ("scipy_cblas_{}gemm", ctypes.c_int), ("cblas_{}gemm", ctypes.c_int))
_PROCESS_MAPS = Path("/proc/self/maps")


# Where a wheel keeps the shared libraries it bundles: auditwheel's "<package>.libs" beside the package on Linux,
# delocate's "<package>/.dylibs" on macOS.
_NUMPY_PACKAGE = Path(np.__file__).resolve().parent
_NUMPY_FOLDERS = (_NUMPY_PACKAGE, _NUMPY_PACKAGE.parent / "numpy.libs")
_SITE_PACKAGES = _NUMPY_PACKAGE.parent
NUMPY_OWN, SYSTEM, OTHER_WHEEL = 0, 1, 2  # the ranks of :func:`_rank`, best first


def _rank(path):
    """NUMPY_OWN for a library inside NumPy's package or its ``numpy.libs`` folder, OTHER_WHEEL for one that another
    installed package bundles (SciPy's ``scipy.libs``: a second OpenBLAS with its own threads), SYSTEM otherwise (a
    NumPy built against the system's BLAS finds it there)."""
    resolved = Path(path).resolve()
    if any(resolved.is_relative_to(folder) for folder in _NUMPY_FOLDERS):
        return NUMPY_OWN
    return OTHER_WHEEL if resolved.is_relative_to(_SITE_PACKAGES) else SYSTEM


def loaded_blas_paths():
    """Shared libraries with 'blas' in their name that this process has mapped, best first (:func:`_rank`, then
    the path: the same order whatever the hash seed)."""
    if not _PROCESS_MAPS.exists():
        return []
    paths = {line.split()[-1] for line in _PROCESS_MAPS.read_text().splitlines()
             if line.rstrip().endswith(".so") or ".so." in line}
    blas = [p for p in paths if "blas" in Path(p).name.lower()]
    return sorted(blas, key=lambda p: (_rank(p), p))


def _numpy_blas():
    """({dtype: cblas_?gemm}, path of its library, None) from NumPy's BLAS, or (None, None, why not)."""
    np.dot(np.ones((2, 2)), np.ones((2, 2)))  # make sure NumPy's BLAS is loaded
    for path in loaded_blas_paths():
        try:
            library = ctypes.CDLL(path)
        except OSError:  # mapped but not loadable again by name (replaced on disk, say): look further
            continue
        for pattern, integer in _CANDIDATES:
            try:
                routines = {np.dtype(np.float32): getattr(library, pattern.format("s")),
                            np.dtype(np.float64): getattr(library, pattern.format("d"))}
            except AttributeError:
                continue
            for routine, real in ((routines[np.dtype(np.float32)], ctypes.c_float),
                                  (routines[np.dtype(np.float64)], ctypes.c_double)):
                routine.restype = None
                routine.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, integer, integer, integer, real,
                                    ctypes.c_void_p, integer, ctypes.c_void_p, integer, real, ctypes.c_void_p,
                                    integer]
            return routines, path, None
    return None, None, "no cblas_?gemm found in the BLAS libraries NumPy loaded (found: " \
                 f"{[Path(p).name for p in loaded_blas_paths()] or 'none'})"


_ROUTINES, LIBRARY, UNAVAILABLE_REASON = _numpy_blas()
AVAILABLE = _ROUTINES is not None


def gemm(m, n, k, a, lda, b, ldb, c, ldc, a_offset=0, b_offset=0, c_offset=0, trans_a=False, trans_b=False,
         alpha=1.0, beta=0.0):
    """C ← α op(A) op(B) + β C on row-major windows: A starts ``a_offset`` elements into the array ``a`` and its
    rows are ``lda`` elements apart (likewise B, C). op(A) is m×k (A itself k×m when ``trans_a``), op(B) k×n.

    Every window must lie inside its array (checked here, from the last element each touches), all three arrays
    C-ordered, of one float dtype.
    """
    if not AVAILABLE:
        raise RuntimeError(f"gemm: {UNAVAILABLE_REASON}")
    dtype = c.dtype
    if a.dtype != dtype or b.dtype != dtype or dtype not in _ROUTINES:
        raise TypeError(f"gemm: operands must share a float32 or float64 dtype, got {a.dtype}, {b.dtype}, {dtype}")
    rows_a, cols_a = (k, m) if trans_a else (m, k)
    rows_b, cols_b = (n, k) if trans_b else (k, n)
    for name, array, offset, rows, cols, ld in (("A", a, a_offset, rows_a, cols_a, lda),
                                                ("B", b, b_offset, rows_b, cols_b, ldb),
                                                ("C", c, c_offset, m, n, ldc)):
        if not array.flags.c_contiguous or cols > ld or offset + (rows - 1) * ld + cols > array.size:
            raise ValueError(f"gemm: the {rows}x{cols} window of {name} at offset {offset}, rows {ld} apart, "
                             f"does not lie inside the C-ordered array of shape {array.shape}")
    if m == 0 or n == 0:
        return
    size = dtype.itemsize
    _ROUTINES[dtype](_ROW_MAJOR, _TRANS if trans_a else _NO_TRANS, _TRANS if trans_b else _NO_TRANS, m, n, k, alpha,
                     a.ctypes.data + a_offset * size, max(lda, 1), b.ctypes.data + b_offset * size, max(ldb, 1),
                     beta, c.ctypes.data + c_offset * size, max(ldc, 1))
