"""The affine coupling kernel family: the Numba and CUDA kernels against the NumPy twin, its graph nodes'
gradients, and every code path of the blocked log-det."""
import numpy as np
import pytest
from hypothesis import given, settings

import nflow
from kernel_helpers import DTYPES, EXAMPLES, shapes, seeds, assert_close, draw, elements_per_sample
from nflow.kernels.cpu import affine_coupling as cpu_affine
from nflow.kernels.cpu.affine_coupling import LOG_PRODUCT_RUN
from nflow.kernels.reference import affine_coupling as ref_affine


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("form", ["sigmoid", "exp"])
@settings(max_examples=EXAMPLES)
@given(shape=shapes, seed=seeds)
def test_affine_coupling_matches_twin(dtype, form, shape, seed):
    rng = np.random.default_rng(seed)
    # h spread 3: h + 2 takes both signs, so both branches of the stable sigmoid run
    x, h, t, g = draw(rng, shape, dtype), draw(rng, shape, dtype, 3.0), draw(rng, shape, dtype), draw(rng, shape, dtype)
    glogdet = draw(rng, shape[:1], dtype)
    m = elements_per_sample(shape)
    for name in ("forward", "inverse"):
        (out, logdet), (ref_out, ref_logdet) = (getattr(mod, name)(x, h, t, form) for mod in (cpu_affine, ref_affine))
        assert_close(out, ref_out, dtype, what=f"{name} output")
        assert_close(logdet, ref_logdet, dtype, scale=m, what=f"{name} log-det")
    got = cpu_affine.forward_backward(x, h, g, glogdet, form)
    want = ref_affine.forward_backward(x, h, g, glogdet, form)
    for a, b, what in zip(got, want, ("dx", "dh", "dt")):
        assert_close(a, b, dtype, what=f"forward_backward {what}")
    got = cpu_affine.inverse_backward(x, h, t, g, glogdet, form)
    want = ref_affine.inverse_backward(x, h, t, g, glogdet, form)
    for a, b, what in zip(got, want, ("dy", "dh", "dt")):
        assert_close(a, b, dtype, what=f"inverse_backward {what}")


def test_affine_coupling_extreme_log_scales_agree():
    # u = h + 2 far out on both sides: s underflows towards 0 or saturates at 1; log-det stays finite
    h = np.array([[-800.0, -40.0, -2.0, 0.0, 40.0, 800.0]])
    x = np.ones_like(h)
    y, logdet = cpu_affine.forward(x, h, np.zeros_like(h), "sigmoid")
    ref_y, ref_logdet = ref_affine.forward(x, h, np.zeros_like(h), "sigmoid")
    np.testing.assert_allclose(y, ref_y, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(logdet, ref_logdet, rtol=1e-12)


def test_affine_coupling_accepts_channel_slices_and_checks_dtypes():
    rng = np.random.default_rng(0)
    full = rng.standard_normal((2, 6, 3, 3))
    xb, h, t = full[:, 3:], full[:, :3] * 0.5, full[:, 1:4]  # non-contiguous views, as the coupling hands in
    assert not xb.flags.c_contiguous
    for a, b in zip(cpu_affine.forward(xb, h, t, "sigmoid"), ref_affine.forward(xb, h, t, "sigmoid")):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    with pytest.raises(TypeError, match="float32 but x is float64"):
        cpu_affine.forward(xb, h.astype(np.float32), t, "sigmoid")
    with pytest.raises(ValueError, match="form must be one of"):
        cpu_affine.forward(xb, h, t, "tanh")


def test_affine_coupling_gradients_against_central_differences():
    # an independent check of the Numba backward: the graph node, float64 finite differences
    from nflow.flows.affine_coupling import affine_coupling_forward, affine_coupling_inverse

    rng = np.random.default_rng(1)
    x, h, t = (nflow.Tensor(rng.standard_normal((2, 3, 2, 2)), requires_grad=True) for _ in range(3))
    with nflow.backend("numba"):
        for form in ("sigmoid", "exp"):
            for fn in (affine_coupling_forward, affine_coupling_inverse):
                assert nflow.gradcheck(lambda a, b, c: _mix(fn(a, b, c, form)), [x, h, t])


def _mix(outputs):
    y, logdet = outputs
    # one scalar-friendly tensor that depends on both outputs, so both gradients are checked
    return nflow.functional.sum(y, axis=(1, 2, 3)) * 0.5 + logdet


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("form", ["sigmoid", "exp"])
def test_cuda_affine_coupling_matches_twin(dtype, form):
    import cupy as cp

    from nflow.kernels.cuda import affine_coupling as cuda_affine

    rng = np.random.default_rng(7)
    for shape in [(3, 4, 5, 5), (2, 7), (64, 16, 14, 14)]:
        x, h, t, g = (cp.asarray(draw(rng, shape, dtype, s)) for s in (1.0, 3.0, 1.0, 1.0))
        glogdet = cp.asarray(draw(rng, shape[:1], dtype))
        m = elements_per_sample(shape)
        for name in ("forward", "inverse"):
            (out, logdet), (ref_out, ref_logdet) = (getattr(mod, name)(x, h, t, form) for mod in (cuda_affine, ref_affine))
            assert_close(cp.asnumpy(out), cp.asnumpy(ref_out), dtype, what=name)
            assert_close(cp.asnumpy(logdet), cp.asnumpy(ref_logdet), dtype, scale=m, what=f"{name} log-det")
        for got, want in ((cuda_affine.forward_backward(x, h, g, glogdet, form),
                           ref_affine.forward_backward(x, h, g, glogdet, form)),
                          (cuda_affine.inverse_backward(x, h, t, g, glogdet, form),
                           ref_affine.inverse_backward(x, h, t, g, glogdet, form))):
            for a, b in zip(got, want):
                assert_close(cp.asnumpy(a), cp.asnumpy(b), dtype)


# ---------------------------------------------------------------------------------------------- log-det runs
# the log-det multiplies LOG_PRODUCT_RUN factors before each log: one below, at and above a run, and two runs
def runs_around(boundary):
    return sorted({max(boundary - 1, 1), boundary, boundary + 1, 2 * boundary, 2 * boundary + 1})


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("form", ["sigmoid", "exp"])
@pytest.mark.parametrize("m", runs_around(LOG_PRODUCT_RUN))
def test_affine_coupling_log_det_runs(dtype, form, m):
    rng = np.random.default_rng(m)
    # h spread so that u = h + 2 takes both signs (the kernel's two branches) within every run
    x, h, t = (rng.standard_normal((3, m)) * 3).astype(dtype), (rng.standard_normal((3, m)) * 4).astype(dtype), \
        rng.standard_normal((3, m)).astype(dtype)
    rtol = 1e-12 if dtype == np.float64 else 16 * np.finfo(dtype).eps
    atol = rtol * (1 if dtype == np.float64 else m)
    for name in ("forward", "inverse"):
        got_y, got_ld = getattr(cpu_affine, name)(x, h, t, form)
        want_y, want_ld = getattr(ref_affine, name)(x, h, t, form)
        np.testing.assert_allclose(got_y, want_y, rtol=rtol, atol=rtol)
        np.testing.assert_allclose(got_ld, want_ld, rtol=rtol, atol=atol)
