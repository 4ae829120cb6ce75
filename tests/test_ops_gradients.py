"""Every op's gradient against central differences in float64 (nflow.gradcheck), shapes drawn by hypothesis."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, mutually_broadcastable_shapes

import nflow
import nflow.functional as F
from nflow import Tensor
from flow_helpers import gradcheck  # nflow.gradcheck, drawing another point where one sits on a kink

SHAPES = array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)
PAIRS = mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=1, max_side=4)


def leaf(rng, shape, low=-2.0, high=2.0):
    return Tensor(rng.uniform(low, high, size=shape), requires_grad=True)


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "pow"])  # every op, every run: one case each
@settings(max_examples=6)
@given(shapes=PAIRS, seed=st.integers(0, 2**31 - 1))
def test_binary_ops_broadcast(op, shapes, seed):
    rng = np.random.default_rng(seed)
    a_shape, b_shape = shapes.input_shapes
    if op in ("div", "pow"):  # keep away from the poles and from negative bases
        a, b = leaf(rng, a_shape, 0.5, 2.0), leaf(rng, b_shape, 0.5, 2.0)
    else:
        a, b = leaf(rng, a_shape), leaf(rng, b_shape)
    fn = {"add": lambda x, y: x + y, "sub": lambda x, y: x - y, "mul": lambda x, y: x * y,
          "div": lambda x, y: x / y, "pow": lambda x, y: x ** y}[op]
    assert gradcheck(fn, [a, b])
    assert a.grad.shape == a.shape and b.grad.shape == b.shape


@settings(max_examples=10)
@given(shape=SHAPES, seed=st.integers(0, 2**31 - 1))
def test_scalar_operands_and_negation(shape, seed):
    rng = np.random.default_rng(seed)
    x = leaf(rng, shape, 0.5, 2.0)
    assert gradcheck(lambda t: 2.0 * t - 1.5 / t + t ** 3 + (-t) + 3.0 - t / 4.0, [x])


@pytest.mark.parametrize("name", ["exp", "log", "sigmoid", "logsigmoid", "softplus", "tanh", "relu"])
@settings(max_examples=4)
@given(shape=SHAPES, seed=st.integers(0, 2**31 - 1))
def test_elementwise(name, shape, seed):
    rng = np.random.default_rng(seed)
    x = leaf(rng, shape, 0.2, 3.0) if name == "log" else leaf(rng, shape, -4.0, 4.0)
    if name == "relu":  # the kink at 0 has no derivative: keep samples off it
        x.data = np.where(np.abs(x.data) < 1e-3, 0.5, x.data)
    assert gradcheck(getattr(F, name), [x])


def test_logistic_family_is_stable_at_extremes():
    x = nflow.tensor(np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0], dtype=np.float32))
    np.testing.assert_allclose(F.sigmoid(x).data, [0, np.exp(-30.0), 0.5, 1, 1], rtol=1e-6, atol=0)
    np.testing.assert_allclose(F.softplus(x).data, [0, np.exp(-30.0), np.log(2), 30, 1000], rtol=1e-6)
    np.testing.assert_allclose(F.logsigmoid(x).data, [-1000, -30, -np.log(2), -np.exp(-30.0), 0], rtol=1e-6)


@pytest.mark.parametrize("name", ["sum", "mean", "logsumexp"])
@pytest.mark.parametrize("keepdims", [False, True])
@settings(max_examples=5)
@given(shape=SHAPES, seed=st.integers(0, 2**31 - 1), data=st.data())
def test_reductions(name, keepdims, shape, seed, data):
    rng = np.random.default_rng(seed)
    x = leaf(rng, shape)
    axis = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1),
                               st.lists(st.integers(0, len(shape) - 1), min_size=1, max_size=len(shape), unique=True)
                               .map(tuple)))
    fn = getattr(F, name)
    assert gradcheck(lambda t: fn(t, axis=axis, keepdims=keepdims), [x])
    expected = {"sum": np.sum, "mean": np.mean}.get(name)
    if expected is not None:
        np.testing.assert_allclose(fn(x, axis=axis, keepdims=keepdims).data,
                                   expected(x.data, axis=axis, keepdims=keepdims), rtol=1e-12)


def test_logsumexp_matches_direct_formula_and_does_not_overflow():
    x = np.array([[1000.0, 1000.0], [-1.0, 2.0]])
    y = F.logsumexp(Tensor(x), axis=1).data
    np.testing.assert_allclose(y, [1000.0 + np.log(2.0), np.log(np.exp(-1.0) + np.exp(2.0))], rtol=1e-12)


@settings(max_examples=15)
@given(shape=array_shapes(min_dims=2, max_dims=4, min_side=1, max_side=4), seed=st.integers(0, 2**31 - 1))
def test_reshape_and_transpose(shape, seed):
    rng = np.random.default_rng(seed)
    x = leaf(rng, shape)
    perm = tuple(rng.permutation(len(shape)))
    assert gradcheck(lambda t: F.transpose(F.reshape(t, (-1,) + shape[2:]), None) * 1.0, [x])
    assert gradcheck(lambda t: F.transpose(t, perm) ** 2, [x])


@settings(max_examples=15)
@given(shape=array_shapes(min_dims=1, max_dims=3, min_side=2, max_side=4), seed=st.integers(0, 2**31 - 1),
       data=st.data())
def test_concat_split_pad(shape, seed, data):
    rng = np.random.default_rng(seed)
    axis = data.draw(st.integers(0, len(shape) - 1))
    a, b = leaf(rng, shape), leaf(rng, shape)
    assert gradcheck(lambda s, t: F.concat([s, t * t], axis=axis), [a, b])

    cut = data.draw(st.integers(1, shape[axis] - 1))
    # only the first piece is used: the unused one must receive a zero gradient
    assert gradcheck(lambda t: F.split(t, [cut], axis=axis)[0] * 2.0, [a])
    pieces = F.split(a, [cut], axis=axis)
    np.testing.assert_array_equal(np.concatenate([p.data for p in pieces], axis=axis), a.data)

    widths = [(data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2))) for _ in shape]
    assert gradcheck(lambda t: F.pad(t, widths) ** 2, [a])


def test_getitem_basic_and_advanced_indexing_accumulates_repeats(rng):
    x = leaf(rng, (5, 4))
    assert gradcheck(lambda t: t[1:4, ::2] * 3.0, [x])
    assert gradcheck(lambda t: t[np.array([0, 2, 2, 4])] ** 2, [x])
    x.grad = None
    F.sum(x[np.array([1, 1, 1])]).backward()
    np.testing.assert_array_equal(x.grad[1], 3.0)


@settings(max_examples=15)
@given(n=st.integers(1, 4), k=st.integers(1, 4), m=st.integers(1, 4), seed=st.integers(0, 2**31 - 1),
       batch=st.sampled_from([(), (2,), (3, 1)]), b_batch=st.sampled_from([(), (1,)]))
def test_matmul_with_batch_broadcasting(n, k, m, seed, batch, b_batch):
    rng = np.random.default_rng(seed)
    a, b = leaf(rng, batch + (n, k)), leaf(rng, b_batch + (k, m))
    assert gradcheck(lambda s, t: s @ t, [a, b])
    np.testing.assert_allclose((a @ b).data, np.matmul(a.data, b.data), rtol=1e-12)


@pytest.mark.parametrize("activation", [None, "relu"])
@pytest.mark.parametrize("with_bias", [True, False])
@settings(max_examples=8)
@given(lead=st.sampled_from([(1,), (3,), (2, 3)]), k=st.integers(1, 4), m=st.integers(1, 4),
       seed=st.integers(0, 2**31 - 1))
def test_linear_is_the_matmul_bias_relu_chain(activation, with_bias, lead, k, m, seed):
    rng = np.random.default_rng(seed)
    x, w, b = leaf(rng, lead + (k,)), leaf(rng, (m, k)), leaf(rng, (m,))
    args = [x, w, b] if with_bias else [x, w]
    assert gradcheck(lambda *t: F.linear(*t, activation=activation), args)
    expected = np.matmul(x.data, w.data.T) + (b.data if with_bias else 0.0)
    expected = np.maximum(expected, 0.0) if activation == "relu" else expected
    np.testing.assert_allclose(F.linear(*args, activation=activation).data, expected, rtol=1e-12)


def test_relu_linears_sharing_one_incoming_gradient_do_not_write_into_it():
    """The ReLU's mask goes into the incoming gradient itself only where the walk owns it alone: here Add hands the
    same array to both layers (the first must leave it for the second), and exp's fresh gradient to the third."""
    rng = np.random.default_rng(3)
    x, w1, w2, w3 = leaf(rng, (5, 3)), leaf(rng, (4, 3)), leaf(rng, (4, 3)), leaf(rng, (2, 4))

    def net(x, w1, w2, w3):
        shared = F.linear(x, w1, activation="relu") + F.linear(x, w2, activation="relu")
        return F.exp(F.linear(shared, w3, activation="relu"))
    assert gradcheck(net, [x, w1, w2, w3])


def test_linear_refuses_bad_shapes_naming_what_it_expected():
    x, w = Tensor(np.ones((4, 3))), Tensor(np.ones((2, 5)))
    with pytest.raises(ValueError, match=r"expects inputs \(\.\.\., 5\), got shape \(4, 3\)"):
        F.linear(x, w)
    with pytest.raises(ValueError, match=r"bias must have shape \(2,\)"):
        F.linear(Tensor(np.ones((4, 5))), w, Tensor(np.ones(3)))
    with pytest.raises(ValueError, match="activation"):
        F.linear(Tensor(np.ones((4, 5))), w, activation="tanh")


def test_gradcheck_catches_a_wrong_gradient():
    class WrongExp(nflow.Function):
        def forward(self, x):
            self.saved = np.exp(x)
            return self.saved

        def backward(self, gy):
            return gy * self.saved * 1.001  # off by 0.1%

    x = Tensor(np.linspace(-1, 1, 5), requires_grad=True)
    with pytest.raises(AssertionError, match="differ"):
        gradcheck(lambda t: WrongExp()(t), [x])


def test_gradcheck_refuses_float32_and_checks_large_inputs_along_directions(rng):
    with pytest.raises(TypeError, match="float64"):
        gradcheck(F.exp, [nflow.tensor(np.ones(3, dtype=np.float32), requires_grad=True)])
    big = leaf(rng, (40, 40))  # above the element-wise limit: random directions are used
    assert gradcheck(lambda t: F.tanh(t) * t, [big])
