"""Which BLAS library the windowed GEMM (kernels/cpu/blas.py) takes: NumPy's own, even when another copy of
OpenBLAS is loaded first.

Why it matters: Numba's first compilation imports ``scipy.linalg.cython_blas``, which maps SciPy's OpenBLAS with a
``scipy_cblas_sgemm`` of its own. A convolution on SciPy's copy beside ``numpy.matmul`` on NumPy's runs two thread
pools that fight over the cores (RealNVP's training step 0.72-0.85 s -> 1.7-3.6 s). The pick used to follow the order of
a Python set, so it changed with the hash seed: the subprocess test runs several seeds.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nflow.kernels.cpu import blas

SEEDS = range(6)  # hash seeds: the old pick chose SciPy's copy under some of these and NumPy's under others
CHILD = """
from pathlib import Path
import numpy as np

def blas_libraries():
    names = (line.split()[-1] for line in Path("/proc/self/maps").read_text().splitlines())
    return {name for name in names if "blas" in Path(name).name.lower() and ".so" in name}

np.dot(np.ones((2, 2)), np.ones((2, 2)))
numpy_own = blas_libraries()  # the reference: what NumPy had mapped before anything else was imported
import scipy.linalg.cython_blas  # what Numba's first compilation does
assert blas_libraries() - numpy_own, "importing SciPy's BLAS mapped no library of its own"
from nflow.kernels.cpu import blas
print(blas.LIBRARY in numpy_own, blas.LIBRARY)
"""


def test_rank_puts_numpys_folders_first_then_the_system_then_other_wheels():
    site = blas._SITE_PACKAGES
    assert blas._rank(site / "numpy.libs" / "libscipy_openblas64_-1.so") == blas.NUMPY_OWN
    assert blas._rank(site / "numpy" / ".dylibs" / "libscipy_openblas64_.dylib") == blas.NUMPY_OWN
    assert blas._rank(site / "scipy.libs" / "libscipy_openblas-2.so") == blas.OTHER_WHEEL
    assert blas._rank(site / "numpy_extra.libs" / "libopenblas.so") == blas.OTHER_WHEEL  # a prefix is not a folder
    assert blas._rank("/usr/lib/x86_64-linux-gnu/libopenblas.so.0") == blas.SYSTEM


def test_loaded_paths_are_ordered_by_rank_then_path_whatever_order_the_maps_list_them(tmp_path, monkeypatch):
    site = blas._SITE_PACKAGES
    numpy_own = str(site / "numpy.libs" / "libscipy_openblas64_-1.so")
    scipy_copy = str(site / "scipy.libs" / "libscipy_openblas-2.so")
    system = "/usr/lib/libblas.so.3"
    maps = tmp_path / "maps"
    maps.write_text("".join(f"7f00-7f01 r-xp 00000000 00:00 1 {path}\n"
                            for path in (scipy_copy, system, "/usr/lib/libm.so.6", numpy_own, scipy_copy)))
    monkeypatch.setattr(blas, "_PROCESS_MAPS", maps)
    assert blas.loaded_blas_paths() == [numpy_own, system, scipy_copy]


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc/self/maps (Linux)")
@pytest.mark.skipif(not blas.AVAILABLE, reason=f"windowed GEMM unavailable: {blas.UNAVAILABLE_REASON}")
@pytest.mark.parametrize("seed", SEEDS)
def test_the_gemm_takes_numpys_blas_when_scipys_was_loaded_first(seed):
    pytest.importorskip("scipy.linalg.cython_blas")
    environment = dict(os.environ, PYTHONHASHSEED=str(seed))
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=environment,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    took_numpys, library = done.stdout.split()
    assert took_numpys == "True", f"hash seed {seed}: the windowed GEMM took {library}, not NumPy's BLAS"
