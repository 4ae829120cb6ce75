"""Every CUDA source compiles, for both dtypes, without a GPU: ``nvcc --ptx`` on the exact text the CuPy
wrappers hand to NVRTC (``loader.source``: ``#define real_t float|double`` + the file). Skipped without nvcc.
Also: importing the CUDA wrappers and the dispatch table never imports CuPy."""
import shutil
import subprocess
import sys

import numpy as np
import pytest

from nflow.kernels.cuda import loader

NVCC = shutil.which("nvcc")
KERNELS = {  # the extern "C" entry points each wrapper launches
    "affine_coupling.cu": ["affine_coupling_map", "affine_coupling_forward_backward",
                           "affine_coupling_inverse_backward"],
    "actnorm.cu": ["actnorm_map", "actnorm_backward"],
    "adam.cu": ["adam_update"],
    "bias_relu.cu": ["bias_relu_forward", "bias_relu_backward"],
    "additive_coupling.cu": ["additive_coupling_map", "additive_coupling_block"],
    "squeeze.cu": ["squeeze_forward", "squeeze_inverse"],
    "invconv.cu": ["invconv_map", "invconv_weight_grad"],
    "lu.cu": ["lu_weight", "lu_weight_backward"],
}


def test_every_source_is_listed():
    assert loader.sources() == sorted(KERNELS)


def test_shared_header_is_inlined_once():
    """block_reduce.cuh is written once and pasted into each source that includes it (no include path needed)."""
    for filename in ("affine_coupling.cu", "actnorm.cu", "bias_relu.cu", "invconv.cu"):
        text = loader.source(filename, np.float32)
        assert '#include "' not in text
        assert text.count("real_t block_sum(") == 1, filename


@pytest.mark.skipif(NVCC is None, reason="nvcc is not on the PATH")
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float", "double"])
@pytest.mark.parametrize("filename", sorted(KERNELS))
def test_compiles_to_ptx(tmp_path, filename, dtype):
    src = tmp_path / filename
    src.write_text(loader.source(filename, dtype), encoding="utf-8")
    ptx = tmp_path / (filename + ".ptx")
    done = subprocess.run([NVCC, "--ptx", "--std=c++14", "-Werror", "all-warnings", "-o", str(ptx), str(src)],
                          capture_output=True, text=True)
    assert done.returncode == 0, f"nvcc failed on {filename} ({dtype.__name__}):\n{done.stderr}"
    text = ptx.read_text()
    for name in KERNELS[filename]:
        assert f".entry {name}(" in text, f"{name} missing from the PTX of {filename}"
    # the dtype really reached the code: double arithmetic uses .f64 registers, float's main path .f32 ones
    wanted = ".f64" if dtype == np.float64 else ".f32"
    assert wanted in text


def test_source_refuses_other_dtypes():
    with pytest.raises(TypeError, match="float32 or float64"):
        loader.source("actnorm.cu", np.float16)


PROBE = """
import sys
attempts = []

class Recorder:  # a meta-path finder that notes every attempt to import cupy and lets the import go on
    def find_spec(self, name, path=None, target=None):
        if name == "cupy" or name.startswith("cupy."):
            attempts.append(name)
        return None

sys.meta_path.insert(0, Recorder())
import nflow                      # nflow.backend probes for CuPy once, inside a guarded import: allowed
del attempts[:]
import importlib
import nflow.flows, nflow.models  # every layer and its graph-node module
import nflow.kernels.dispatch as dispatch
import nflow.kernels.cuda.loader
for family in dispatch.FAMILIES:  # every implementation of every family, the CUDA wrappers included
    for backend in ("numpy", "numba", "cupy"):
        importlib.import_module(dispatch.module_name(family, backend))
assert not attempts, f"cupy import attempted: {attempts}"
"""


def test_dispatch_and_cuda_wrappers_never_import_cupy_at_import_time():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
