"""The standard Gaussian prior's kernel family: Numba against the twin, the closed-form density, the node's
gradient."""
import numpy as np
import pytest
from hypothesis import given, settings

import nflow
from kernel_helpers import DTYPES, EXAMPLES, shapes, seeds, assert_close, draw, elements_per_sample
from nflow.kernels.cpu import gaussian as cpu_gaussian
from nflow.kernels.reference import gaussian as ref_gaussian


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=EXAMPLES)
@given(shape=shapes, seed=seeds)
def test_gaussian_log_prob_matches_twin(dtype, shape, seed):
    rng = np.random.default_rng(seed)
    z = draw(rng, shape, dtype)
    glogp = draw(rng, shape[:1], dtype)
    m = elements_per_sample(shape)
    assert_close(cpu_gaussian.standard_log_prob(z), ref_gaussian.standard_log_prob(z), dtype, scale=m,
                 what="standard log_prob")
    assert_close(cpu_gaussian.standard_log_prob_backward(z, glogp),
                 ref_gaussian.standard_log_prob_backward(z, glogp), dtype, what="standard dz")


def test_gaussian_log_prob_is_the_normal_density():
    # an independent value: the density of N(0, 1) at z, from its closed form, in float64
    z = np.array([[0.3, -1.2], [2.5, 0.0]])
    expected = np.sum(np.log(np.exp(-0.5 * z ** 2) / np.sqrt(2 * np.pi)), axis=1)
    for module in (cpu_gaussian, ref_gaussian):
        np.testing.assert_allclose(module.standard_log_prob(z), expected, rtol=1e-14)


def test_gaussian_graph_node_has_correct_gradients():
    from nflow.flows.priors import standard_gaussian_log_prob

    rng = np.random.default_rng(2)
    z = nflow.Tensor(rng.standard_normal((2, 3, 2)), requires_grad=True)
    for backend in ("numpy", "numba"):
        with nflow.backend(backend):
            assert nflow.gradcheck(standard_gaussian_log_prob, [z])
