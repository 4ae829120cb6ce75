"""Central differences that cannot straddle a kink by chance (issue 19): nflow.gradcheck.central_difference."""
import numpy as np
import pytest

import nflow
import nflow.functional as F
from nflow.gradcheck import KINK_TOL, NonDifferentiablePoint, central_difference

EPS = 1e-6


def relu_ramp(kink):
    """f(x) = max(x - kink, 0) + x²: slope 2x left of the kink, 2x + 1 right of it."""
    return lambda x: max(x - kink, 0.0) + x * x


@pytest.mark.parametrize("offset", [0.3 * EPS, -0.7 * EPS])
def test_a_kink_inside_the_step_is_stepped_around(offset):
    # a plain central difference at ε averages the two slopes; the shrunk step sees the true one
    x = 0.5
    f = relu_ramp(x + offset)
    naive = (f(x + EPS) - f(x - EPS)) / (2 * EPS)
    true_slope = 2 * x + (1.0 if offset < 0 else 0.0)
    assert abs(naive - true_slope) > 0.1  # the failure mode: off by a fraction of the jump in slope
    got = central_difference(lambda t: f(x + t), f(x), EPS)
    assert abs(got - true_slope) < 1e-6


def test_a_point_on_the_kink_has_no_derivative():
    # the kink at x itself: at every step down to ε / STEP_SHRINK^STEP_RETRIES the one-sided slopes differ by 1
    f = relu_ramp(0.5)
    with pytest.raises(NonDifferentiablePoint, match="kink"):
        central_difference(lambda t: f(0.5 + t), f(0.5), EPS)


def test_smooth_functions_pass_at_the_first_step_even_with_large_curvature():
    # f = exp(4x) at x = 1: f'' = 16 e⁴ ≈ 870, within KINK_TOL·(1 + |f'|)/ε of a smooth function
    calls = []

    def f(t):
        calls.append(t)
        return np.exp(4 * (1 + t))

    got = central_difference(f, np.exp(4.0), EPS)
    assert abs(got - 4 * np.exp(4.0)) < 1e-6 * 4 * np.exp(4.0)
    assert calls == [EPS, -EPS]  # no retry was needed
    assert KINK_TOL * (1 + 4 * np.exp(4.0)) > EPS * 16 * np.exp(4.0)


def test_gradcheck_still_catches_a_wrong_gradient_away_from_kinks():
    # a kink-aware step must not hide a bug: relu's gradient doubled is caught at a smooth point
    class DoubledRelu(nflow.Function):
        def forward(self, x):
            self.saved = x
            return np.maximum(x, 0)

        def backward(self, gy):
            return 2 * gy * (self.saved > 0)

    x = nflow.tensor(np.array([[0.7, -0.4, 1.3]]), requires_grad=True, dtype=np.float64)
    with pytest.raises(AssertionError, match="analytic and numeric gradients differ"):
        nflow.gradcheck(lambda a: DoubledRelu()(a), [x])
    assert nflow.gradcheck(lambda a: F.relu(a), [x])


def test_gradcheck_reports_a_point_on_a_kink():
    x = nflow.tensor(np.array([[0.0, 1.0]]), requires_grad=True, dtype=np.float64)
    with pytest.raises(NonDifferentiablePoint):
        nflow.gradcheck(lambda a: F.relu(a), [x])
