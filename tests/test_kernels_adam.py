"""Adam's fused update (kernel family ``adam``): the Numba kernel against its NumPy twin, the twin against
Algorithm 1 of Kingma & Ba (2015) written out here, and the optimizer on both backends.

The kernel performs the twin's operations in the same order and dtype (no fast-math), so the two agree exactly;
against the line-by-line float64 formula (which divides m by 1 - β₁ᵗ before multiplying by lr) the twin
agrees to a few float64 roundings.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nflow
from nflow import Tensor
from nflow.kernels import dispatch
from nflow.kernels.cpu import adam as cpu_adam
from nflow.kernels.reference import adam as ref_adam
from nflow.optim import Adam

DTYPES = [np.float32, np.float64]
HYPER = dict(beta1=0.9, beta2=0.999, eps=1e-8)


def _state(rng, shape, dtype):
    theta, g = rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype)
    m = (0.1 * rng.standard_normal(shape)).astype(dtype)
    v = (0.01 * rng.random(shape)).astype(dtype)
    return theta, g, m, v


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=15)
@given(shape=st.one_of(st.tuples(st.integers(1, 40)), st.tuples(st.integers(1, 5), st.integers(1, 7))),
       t=st.integers(1, 1000), seed=st.integers(0, 2 ** 32 - 1))
def test_kernel_matches_twin_exactly(dtype, shape, t, seed):
    rng = np.random.default_rng(seed)
    a = _state(rng, shape, dtype)
    b = tuple(x.copy() for x in a)
    scalars = dict(HYPER, step_size=1e-3 / (1 - 0.9 ** t), bias2=1 - 0.999 ** t)
    ref_adam.update(*a, **scalars)
    cpu_adam.update(*b, **scalars)
    for name, x, y in zip(("theta", "grad", "m", "v"), a, b):
        assert y.dtype == dtype
        np.testing.assert_array_equal(y, x, err_msg=name)


def test_twin_is_algorithm_1():
    rng = np.random.default_rng(2)
    theta, g, m, v = _state(rng, (6,), np.float64)
    lr, b1, b2, eps, t = 0.01, 0.9, 0.999, 1e-8, 3
    m_want = b1 * m + (1 - b1) * g
    v_want = b2 * v + (1 - b2) * g * g
    theta_want = theta - lr * (m_want / (1 - b1 ** t)) / (np.sqrt(v_want / (1 - b2 ** t)) + eps)
    ref_adam.update(theta, g, m, v, step_size=lr / (1 - b1 ** t), beta1=b1, beta2=b2, eps=eps, bias2=1 - b2 ** t)
    np.testing.assert_allclose(m, m_want, rtol=1e-15)
    np.testing.assert_allclose(v, v_want, rtol=1e-15)
    np.testing.assert_allclose(theta, theta_want, rtol=1e-14)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_optimizer_takes_the_same_steps_on_both_backends(backend):
    rng = np.random.default_rng(3)
    theta0 = rng.standard_normal((3, 4)).astype(np.float32)
    grads = [rng.standard_normal((3, 4)).astype(np.float32) for _ in range(3)]

    def run(be):
        p = Tensor(theta0.copy(), requires_grad=True)
        opt = Adam([p], lr=0.05)
        with nflow.backend(be):
            for g in grads:
                p.grad = g.copy()
                opt.step()
        return p.data

    np.testing.assert_array_equal(run(backend), run("numpy"))


def test_kernel_refuses_bad_input():
    theta, g, m, v = _state(np.random.default_rng(4), (4, 3), np.float32)
    s = dict(HYPER, step_size=1e-3, bias2=1e-3)
    for module in (ref_adam, cpu_adam):  # one contract (kernels/reference/adam.py: check), the same sentences
        with pytest.raises(ValueError, match=r"adam kernel: m must have shape \(4, 3\) for the parameter of shape "
                                             r"\(4, 3\), got \(3,\)"):
            module.update(theta, g, m[0], v, **s)
        with pytest.raises(TypeError, match="adam kernel: grad is float64 but the parameter is float32"):
            module.update(theta, g.astype(np.float64), m, v, **s)
        with pytest.raises(ValueError, match="must be C-ordered"):
            module.update(np.asfortranarray(theta), g, np.asfortranarray(m), np.asfortranarray(v), **s)
        with pytest.raises(TypeError, match="float32 or float64"):
            module.update(*(a.astype(np.float16) for a in (theta, g, m, v)), **s)


def test_dispatch():
    assert dispatch.kernel_module("adam", "numba") is cpu_adam
    assert dispatch.kernel_module("adam", "numpy") is ref_adam


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_kernel_matches_twin(dtype):
    import cupy as cp

    from nflow.kernels.cuda import adam as cuda_adam

    rng = np.random.default_rng(5)
    a = _state(rng, (1000, 7), dtype)
    b = tuple(cp.asarray(x) for x in a)
    scalars = dict(HYPER, step_size=1e-3 / 0.1, bias2=1e-3)
    ref_adam.update(*a, **scalars)
    cuda_adam.update(*b, **scalars)
    for x, y in zip(a, b):  # the GPU may contract a·b + c into an FMA: a few ulps apart
        np.testing.assert_allclose(cp.asnumpy(y), x, rtol=8 * np.finfo(dtype).eps, atol=8 * np.finfo(dtype).eps)
