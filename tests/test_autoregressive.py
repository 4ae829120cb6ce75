"""MADE and the affine autoregressive layers (MAF, IAF) — what the property kit cannot see from outside:

- MADE is autoregressive: ∂out_i/∂in_j is exactly zero unless input j comes before input i in the order, for
  every order option, and nonzero wherever the order allows it (so the masks do not just cut everything);
- the masks are the degree rule written out in the docstring, checked here against a direct loop;
- a masked weight gets exactly zero gradient; MADE's gradients match central differences (float64);
- each layer's Jacobian ∂u/∂x is triangular in the layer's order, and its log-det is the sum of the logs of the
  diagonal (and slogdet of the full Jacobian), all from central differences in float64;
- MAF's forward is one MADE pass and its inverse D passes; IAF the other way round.

(Round trips, log-det against the Jacobian and gradients of the layers and models run through ``nflow.testing``
in ``test_builtin_layers_through_kit.py``; the models' own tests are in ``test_models.py``.)
"""
import numpy as np
import pytest

import nflow
from flow_helpers import perturb
from nflow.backend import to_numpy
from nflow.flows import IAFLayer, MADE, MAFLayer
from nflow.flows.made import input_degrees
from nflow.gradcheck import gradcheck
from nflow.tensor import no_grad

D = 5
HIDDEN = (12, 12)       # ≥ D - 1 units per layer: every degree 1..D-1 present, so every allowed path exists
WIDE = (40, 40)         # 10 units of each hidden degree: some stay on at any point
ORDERS = [("natural", None), ("reversed", None), ("random", 7)]
FD_STEP = 1e-6          # central differences in float64: truncation ~1e-12, rounding ~1e-10 on O(1) values
FD_RTOL = 1e-6


def numeric_jacobian(f, x):
    """J[n, i, j] = ∂f(x)_n,i / ∂x_n,j by central differences; f maps (N, D) arrays to (N, K) arrays."""
    n, d = x.shape
    columns = []
    for j in range(d):
        e = np.zeros_like(x)
        e[:, j] = FD_STEP
        columns.append((f(x + e) - f(x - e)) / (2 * FD_STEP))
    return np.stack(columns, axis=2)


def made_outputs(made):
    def f(x):
        with no_grad():
            mu, a = made(nflow.tensor(x))
        return np.concatenate([to_numpy(mu.data), to_numpy(a.data)], axis=1)
    return f


def build_made(order, seed, hidden=HIDDEN):
    nflow.seed(0)
    made = MADE(D, hidden, order=order, seed=seed, dtype=np.float64)
    return perturb(made, np.random.default_rng(1), std=0.5)  # the output layer starts at zero: move it


@pytest.mark.parametrize("order,seed", ORDERS)
def test_made_is_autoregressive_in_its_order(order, seed):
    made = build_made(order, seed, hidden=WIDE)
    m = input_degrees(D, order, seed)
    x = np.random.default_rng(2).normal(size=(4, D))
    jac = numeric_jacobian(made_outputs(made), x)                      # (3, 2D, D): μ rows, then a rows
    allowed = m[None, :] < m[:, None]                                  # allowed[i, j] = [m(j) < m(i)]
    allowed = np.concatenate([allowed, allowed], axis=0)
    assert np.all(jac[:, ~allowed] == 0.0)                             # exactly: no path at all
    # and every allowed path is used: nonzero at one of the points at least (at one point, all the ReLU units of
    # the one degree between j and i can be off, which makes that entry 0 there legitimately)
    assert np.all(np.abs(jac[:, allowed]).max(axis=0) > 1e-8)
    first = int(np.argmin(m))                                          # degree 1: a constant of the input
    assert np.all(jac[:, [first, D + first], :] == 0.0)


def test_input_degrees_of_each_order():
    np.testing.assert_array_equal(input_degrees(4, "natural"), [1, 2, 3, 4])
    np.testing.assert_array_equal(input_degrees(4, "reversed"), [4, 3, 2, 1])
    a, b = input_degrees(6, "random", 3), input_degrees(6, "random", 3)
    np.testing.assert_array_equal(a, b)                                 # the seed fixes the order
    np.testing.assert_array_equal(np.sort(a), np.arange(1, 7))
    assert any(not np.array_equal(input_degrees(6, "random", s), a) for s in range(4, 10))
    with pytest.raises(ValueError, match=r"MADE: order='random' needs a seed"):
        input_degrees(4, "random")
    with pytest.raises(ValueError, match=r"MADE: order must be one of"):
        MADE(4, (8,), order="sideways")


@pytest.mark.parametrize("order,seed", ORDERS)
def test_masks_follow_the_degree_rule(order, seed):
    """M_hidden[k, j] = [m_out(k) ≥ m_in(j)], M_out[k, j] = [m_out(k) > m_in(j)], with hidden degrees
    1 + (k mod (D - 1)), written here as loops over the units."""
    made = MADE(D, HIDDEN, order=order, seed=seed)
    inputs = list(input_degrees(D, order, seed))
    degrees_in = inputs
    layers = list(made.hidden) + [made.out]
    for index, layer in enumerate(layers):
        last = index == len(layers) - 1
        degrees_out = inputs * 2 if last else [1 + k % (D - 1) for k in range(layer.out_features)]
        mask = to_numpy(layer.mask)
        for k, d_out in enumerate(degrees_out):
            for j, d_in in enumerate(degrees_in):
                assert mask[k, j] == float(d_out > d_in if last else d_out >= d_in), (index, k, j)
        degrees_in = degrees_out


def test_masked_weights_get_zero_gradient_and_made_gradients_match_central_differences():
    made = build_made("random", 3)
    x = nflow.tensor(np.random.default_rng(4).normal(size=(3, D)), requires_grad=True, dtype=np.float64)
    mu, a = made(x)
    nflow.functional.sum(mu * a + mu).backward()
    for layer in list(made.hidden) + [made.out]:
        assert np.all(to_numpy(layer.weight.grad)[to_numpy(layer.mask) == 0] == 0.0)
    params = made.parameters()
    assert gradcheck(lambda x, *p: nflow.functional.concat(list(made(x)), axis=1), [x] + params)


def test_a_loaded_mask_that_breaks_the_order_is_refused():
    made = MADE(3, (4,))
    state = made.state_dict()
    state["out.mask"] = np.ones_like(state["out.mask"])
    with pytest.raises(ValueError, match=r"MADE: the loaded mask of layer 1 is not the mask its degrees give"):
        MADE(3, (4,)).load_state_dict(state)


# ------------------------------------------------------------------------------------------------ the flow layers
LAYER_CASES = [(cls, order, seed) for cls in (MAFLayer, IAFLayer) for order, seed in ORDERS]
LAYER_IDS = [f"{cls.__name__}-{order}" for cls, order, _ in LAYER_CASES]


def build_layer(cls, order, seed):
    nflow.seed(0)
    layer = cls(D, HIDDEN, order=order, seed=seed, dtype=np.float64)
    return perturb(layer, np.random.default_rng(5), std=0.3)


@pytest.mark.parametrize("cls,order,seed", LAYER_CASES, ids=LAYER_IDS)
def test_jacobian_is_triangular_in_the_order_and_log_det_is_the_log_diagonal(cls, order, seed):
    layer = build_layer(cls, order, seed)
    x = np.random.default_rng(6).normal(size=(3, D))

    def f(x):
        with no_grad():
            return to_numpy(layer.forward(nflow.tensor(x))[0].data)

    jac = numeric_jacobian(f, x)                                   # (3, D, D), J[n, i, j] = ∂u_i/∂x_j
    with no_grad():
        logdet = to_numpy(layer.forward(nflow.tensor(x))[1].data)
    position = np.argsort(input_degrees(D, order, seed))           # the variables sorted by their degree
    ordered = jac[:, position][:, :, position]
    assert np.all(np.triu(np.ones((D, D), bool), k=1)[None] <= (ordered == 0.0))   # upper part exactly 0
    assert np.all(np.abs(ordered[:, np.tril(np.ones((D, D), bool), k=-1)]).max(axis=0) > 1e-8)  # dependence
    diagonal = np.log(np.abs(np.diagonal(jac, axis1=1, axis2=2))).sum(axis=1)
    np.testing.assert_allclose(logdet, diagonal, rtol=FD_RTOL, atol=FD_RTOL)
    np.testing.assert_allclose(logdet, np.linalg.slogdet(jac)[1], rtol=FD_RTOL, atol=FD_RTOL)


class CountingMADE:
    """Wraps a layer's MADE to count its passes."""

    def __init__(self, layer):
        self.calls, self.inner = 0, layer.made
        object.__setattr__(layer, "made", self)

    def __call__(self, h):
        self.calls += 1
        return self.inner(h)


@pytest.mark.parametrize("cls,one_pass", [(MAFLayer, "forward"), (IAFLayer, "inverse")])
def test_one_direction_is_one_pass_and_the_other_d_passes(cls, one_pass):
    layer = build_layer(cls, "natural", None)
    counter = CountingMADE(layer)
    x = nflow.tensor(np.random.default_rng(7).normal(size=(2, D)))
    with no_grad():
        getattr(layer, one_pass)(x)
        assert counter.calls == 1
        counter.calls = 0
        getattr(layer, "inverse" if one_pass == "forward" else "forward")(x)
    assert counter.calls == D


@pytest.mark.parametrize("cls", [MAFLayer, IAFLayer])
def test_a_fresh_layer_is_the_identity(cls):
    layer = cls(D, HIDDEN)
    x = np.random.default_rng(8).normal(size=(4, D)).astype(np.float32)
    for direction in ("forward", "inverse"):
        with no_grad():
            y, logdet = getattr(layer, direction)(nflow.tensor(x))
        np.testing.assert_array_equal(to_numpy(y.data), x)
        np.testing.assert_array_equal(to_numpy(logdet.data), 0.0)


def test_the_log_scale_is_bounded():
    """α = 5·tanh(a/5): with a huge raw log-scale the layer scales by at most e^5 per coordinate."""
    layer = MAFLayer(2, (4,), dtype=np.float64)
    layer.made.out.bias.data = layer.made.out.bias.data + np.array([0.0, 0.0, 1e3, -1e3])  # a for x_1, x_2
    with no_grad():
        u, logdet = layer.forward(nflow.tensor(np.ones((1, 2))))
    np.testing.assert_allclose(to_numpy(u.data), [[np.exp(-5.0), np.exp(5.0)]], rtol=1e-12)
    np.testing.assert_allclose(to_numpy(logdet.data), [0.0], atol=1e-12)
