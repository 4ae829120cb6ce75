"""The backends as a whole: which implementation each runs (dispatch), a whole Glow agreeing across numpy,
numba and cupy, the cupy backend's message without a GPU, and the kernels as plain Python with the JIT off."""
import numpy as np
import pytest

import nflow
from kernel_helpers import assert_runs_with_jit_disabled
from nflow.backend import cupy_available
from nflow.kernels import dispatch
from nflow.kernels.cpu import actnorm as cpu_actnorm
from nflow.kernels.cpu import affine_coupling as cpu_affine
from nflow.kernels.cpu import gaussian as cpu_gaussian
from nflow.kernels.reference import affine_coupling as ref_affine


def test_numba_backend_dispatches_to_the_numba_kernels():
    assert dispatch.kernel_module("affine_coupling", "numba") is cpu_affine
    assert dispatch.kernel_module("actnorm", "numba") is cpu_actnorm
    assert dispatch.kernel_module("gaussian", "numba") is cpu_gaussian
    assert dispatch.kernel_module("affine_coupling", "numpy") is ref_affine
    assert dispatch.module_name("actnorm", "cupy") == "nflow.kernels.cuda.actnorm"
    with nflow.backend("numba"):
        assert dispatch.kernel_module("actnorm") is cpu_actnorm
    with pytest.raises(KeyError, match="unknown kernel family"):
        dispatch.kernel_module("nope")


def _glow():
    from nflow.models import Glow
    return Glow((1, 8, 8), levels=2, steps=2, hidden=8, dtype=np.float64)


@pytest.fixture(scope="module")
def glow_pair():
    """The same Glow twice: built and initialised (ActNorm's data-dependent start) on numpy, its weights
    perturbed so no layer is at its identity start, then copied into a second model used on numba."""
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 1, (3, 1, 8, 8))
    with nflow.backend("numpy"):
        nflow.seed(5)
        reference = _glow()
        reference.log_prob(x)  # ActNorm initialises from this batch
        for p in reference.parameters():
            p.data += 0.05 * rng.standard_normal(p.shape)
    with nflow.backend("numba"):
        nflow.seed(6)  # a different seed: everything it draws must be overwritten by the state dict
        twin = _glow()
        twin.load_state_dict(reference.state_dict())
    return reference, twin, x


def _log_prob_and_grads(model, x, backend):
    with nflow.backend(backend):
        model.zero_grad()
        log_prob = model.log_prob(x)
        (-log_prob.sum() * (1.0 / len(x))).backward()
        return log_prob.data, {name: p.grad for name, p in model.named_parameters()}


def test_glow_log_prob_and_gradients_agree_across_backends(glow_pair):
    reference, twin, x = glow_pair
    lp_ref, grads_ref = _log_prob_and_grads(reference, x, "numpy")
    lp, grads = _log_prob_and_grads(twin, x, "numba")
    np.testing.assert_allclose(lp, lp_ref, rtol=1e-11)
    assert grads.keys() == grads_ref.keys()
    for name in grads_ref:
        scale = np.abs(grads_ref[name]).max()
        np.testing.assert_allclose(grads[name], grads_ref[name], rtol=1e-9, atol=1e-11 * max(scale, 1.0),
                                   err_msg=name)


def test_glow_encode_decode_and_samples_agree_across_backends(glow_pair):
    reference, twin, x = glow_pair
    with nflow.backend("numpy"):
        z_ref = reference.encode(x)
        x_ref = reference.decode(z_ref)
        samples_ref = reference.sample(4, temperature=0.7, seed=11)
    with nflow.backend("numba"):
        z = twin.encode(x)
        x_back = twin.decode(z)
        samples = twin.sample(4, temperature=0.7, seed=11)
    for a, b in zip(z, z_ref):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(x_back, x, atol=1e-10)  # decode inverts encode
    np.testing.assert_allclose(x_back, x_ref, atol=1e-12)
    np.testing.assert_allclose(samples, samples_ref, rtol=1e-10, atol=1e-12)


@pytest.mark.gpu
def test_glow_on_cupy_agrees_with_numpy(glow_pair):
    reference, _, x = glow_pair
    lp_ref, grads_ref = _log_prob_and_grads(reference, x, "numpy")
    with nflow.backend("cupy"):
        gpu = _glow()
        gpu.load_state_dict(reference.state_dict())
    lp, grads = _log_prob_and_grads(gpu, x, "cupy")
    from nflow.backend import to_numpy
    np.testing.assert_allclose(to_numpy(lp), lp_ref, rtol=1e-10)
    for name in grads_ref:
        np.testing.assert_allclose(to_numpy(grads[name]), grads_ref[name], rtol=1e-8,
                                   atol=1e-10 * max(np.abs(grads_ref[name]).max(), 1.0), err_msg=name)


def test_cupy_backend_without_a_gpu_says_why():
    if cupy_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="backend 'cupy' is unavailable"):
        nflow.set_backend("cupy")


def test_kernels_run_as_plain_python_with_jit_disabled():
    code = """
import numpy as np
from nflow.kernels.cpu import actnorm, affine_coupling, gaussian, vector_exp
from nflow.kernels.reference import actnorm as ref_actnorm, affine_coupling as ref_affine, gaussian as ref_gaussian
assert not hasattr(affine_coupling._forward, "py_func"), "the JIT is still on"
rng = np.random.default_rng(0)
x, h, t, g = (rng.standard_normal((2, 3, 2, 2)) for _ in range(4))
gl = rng.standard_normal(2)
for form in ("sigmoid", "exp"):
    for a, b in zip(affine_coupling.forward(x, 3 * h, t, form), ref_affine.forward(x, 3 * h, t, form)):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    for a, b in zip(affine_coupling.inverse_backward(x, h, t, g, gl, form),
                    ref_affine.inverse_backward(x, h, t, g, gl, form)):
        np.testing.assert_allclose(a, b, rtol=1e-12)
for a, b in zip(actnorm.forward_backward(x, h[0, :, 0, 0], t[0, :, 0, 0], g, gl),
                ref_actnorm.forward_backward(x, h[0, :, 0, 0], t[0, :, 0, 0], g, gl)):
    np.testing.assert_allclose(a, b, rtol=1e-12)
np.testing.assert_allclose(gaussian.standard_log_prob(x), ref_gaussian.standard_log_prob(x), rtol=1e-12)
assert vector_exp.float64_from_bits(0x3FF0000000000000) == 1.0 and vector_exp.float32_from_bits(0x40000000) == 2.0
print("ok")
"""
    assert_runs_with_jit_disabled(code)
