"""The ActNorm kernel family: the Numba and CUDA kernels against the NumPy twin, and its contract."""
import math

import numpy as np
import pytest
from hypothesis import given, settings

from kernel_helpers import DTYPES, EXAMPLES, shapes, seeds, assert_close, draw, elements_per_sample
from nflow.kernels.cpu import actnorm as cpu_actnorm
from nflow.kernels.reference import actnorm as ref_actnorm


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=EXAMPLES)
@given(shape=shapes, seed=seeds)
def test_actnorm_matches_twin(dtype, shape, seed):
    rng = np.random.default_rng(seed)
    x, g = draw(rng, shape, dtype), draw(rng, shape, dtype)
    bias, log_s = draw(rng, shape[1:2], dtype), draw(rng, shape[1:2], dtype)
    glogdet = draw(rng, shape[:1], dtype)
    per_channel = shape[0] * math.prod(shape[2:])
    for name in ("forward", "inverse"):
        (out, logdet), (ref_out, ref_logdet) = (getattr(mod, name)(x, bias, log_s) for mod in (cpu_actnorm, ref_actnorm))
        assert_close(out, ref_out, dtype, what=f"{name} output")
        assert_close(logdet, ref_logdet, dtype, scale=elements_per_sample(shape), what=f"{name} log-det")
    for name in ("forward_backward", "inverse_backward"):
        got = getattr(cpu_actnorm, name)(x, bias, log_s, g, glogdet)
        want = getattr(ref_actnorm, name)(x, bias, log_s, g, glogdet)
        assert_close(got[0], want[0], dtype, what=f"{name} input gradient")
        # per-channel sums of N·P terms of size up to ~e^|log_s|·|g|·|x + b|
        scale = per_channel * float(np.exp(np.abs(log_s.astype(np.float64))).max()) * 10
        assert_close(got[1], want[1], dtype, scale=scale, what=f"{name} bias gradient")
        assert_close(got[2], want[2], dtype, scale=scale, what=f"{name} log-scale gradient")


def test_actnorm_checks_shapes_and_dtypes():
    x = np.zeros((2, 3, 4, 4), np.float32)
    with pytest.raises(ValueError, match=r"bias must have shape \(3,\)"):
        cpu_actnorm.forward(x, np.zeros(4, np.float32), np.zeros(3, np.float32))
    with pytest.raises(TypeError, match="log_s is float64 but x is float32"):
        cpu_actnorm.forward(x, np.zeros(3, np.float32), np.zeros(3, np.float64))


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_actnorm_matches_twin(dtype):
    import cupy as cp

    from nflow.kernels.cuda import actnorm as cuda_actnorm

    rng = np.random.default_rng(8)
    for shape in [(3, 4, 5, 5), (2, 7), (64, 16, 14, 14)]:
        x, g = cp.asarray(draw(rng, shape, dtype)), cp.asarray(draw(rng, shape, dtype))
        bias, log_s = cp.asarray(draw(rng, shape[1:2], dtype)), cp.asarray(draw(rng, shape[1:2], dtype, 0.5))
        glogdet = cp.asarray(draw(rng, shape[:1], dtype))
        per_channel = shape[0] * math.prod(shape[2:])
        for name in ("forward", "inverse"):
            for a, b in zip(getattr(cuda_actnorm, name)(x, bias, log_s), getattr(ref_actnorm, name)(x, bias, log_s)):
                assert_close(cp.asnumpy(a), cp.asnumpy(b), dtype, scale=elements_per_sample(shape), what=name)
        for name in ("forward_backward", "inverse_backward"):
            got = getattr(cuda_actnorm, name)(x, bias, log_s, g, glogdet)
            want = getattr(ref_actnorm, name)(x, bias, log_s, g, glogdet)
            assert_close(cp.asnumpy(got[0]), cp.asnumpy(want[0]), dtype, what=name)
            for a, b in zip(got[1:], want[1:]):
                assert_close(cp.asnumpy(a), cp.asnumpy(b), dtype, scale=10 * per_channel, what=name)
