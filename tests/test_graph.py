"""The graph machinery of the tensor core: order, accumulation, freeing, no_grad and the error paths.

Every expected gradient below is written out by hand (a product of constants, a sum of two paths), never
computed by nflow itself.
"""
import gc
import sys
import weakref

import numpy as np
import pytest

import nflow
import nflow.functional as F
from nflow import Function, Tensor


def leaf(values, dtype=np.float64):
    return Tensor(np.asarray(values, dtype=dtype), requires_grad=True)


# ------------------------------------------------------------------------------------------- deep graphs
def test_chain_of_20000_ops_backpropagates_without_recursion():
    """20,000 element-wise ops: deeper than any recursion limit; the gradient is a product of constants.

    Each cycle is y <- log(exp(a·y + b)), whose derivative is exactly a (d log(exp(u))/du = 1), so after
    5,000 cycles dy/dx = a^5000.
    """
    assert sys.getrecursionlimit() < 20_000
    a, b, cycles = 1.0001, 1e-4, 5_000
    x = leaf([0.5, -0.25])
    y = x
    for _ in range(cycles):
        y = F.log(F.exp(y * a + b))
    assert y.creator.generation == 4 * cycles
    F.sum(y).backward()
    np.testing.assert_allclose(x.grad, [a ** cycles] * 2, rtol=1e-10)
    # the forward value too: the affine recursion y <- a y + b has a closed form
    expected = a ** cycles * x.data + b * (a ** cycles - 1) / (a - 1)
    np.testing.assert_allclose(y.data, expected, rtol=1e-9)


def test_deep_graph_dropped_without_backward_is_freed_without_recursion():
    x = leaf([1.0])
    y = x
    for _ in range(20_000):
        y = y * 1.0
    ref = weakref.ref(y.creator)
    del y  # tears down 20,000 nodes by reference counting; must neither crash nor recurse
    assert ref() is None


# ------------------------------------------------------------------------------------------- accumulation
def test_gradients_accumulate_across_two_backward_calls_into_leaves():
    x = leaf([1.0, 2.0, 3.0])
    F.sum(x * x).backward()          # d/dx Σx² = 2x
    np.testing.assert_array_equal(x.grad, [2.0, 4.0, 6.0])
    F.sum(x * 3.0).backward()        # + 3
    np.testing.assert_array_equal(x.grad, [5.0, 7.0, 9.0])
    x.zero_grad()
    assert x.grad is None


def test_leaf_gradient_never_aliases_the_seed_or_an_ops_buffer():
    x = leaf([1.0, 2.0])
    seed = np.array([1.0, 1.0])
    (x + 0.0).backward(seed)
    x.grad[0] = 100.0
    np.testing.assert_array_equal(seed, [1.0, 1.0])


class _Returns(Function):
    """y = x (elementwise identity); backward returns what ``make(self, gy)`` builds, to probe _backprop's rule
    for taking a gradient array as a leaf's .grad without copying it."""

    def __init__(self, make):
        self.make = make

    def forward(self, x):
        return x.copy()

    def backward(self, gy):
        return self.make(self, gy)


def _fresh(op, gy):
    g = gy * 2.0
    op.fresh_id = id(g)  # an int: holds no reference, so the array stays unshared
    return g


def _saved(op, gy):
    op.kept = gy * 2.0  # an array the op keeps (a workspace it will reuse, say)
    return op.kept


def test_a_fresh_gradient_nobody_else_holds_becomes_the_leafs_grad_without_a_copy():
    x = leaf([1.0, 2.0])
    op = _Returns(_fresh)
    op(x).backward(np.array([1.0, 1.0]))
    assert id(x.grad) == op.fresh_id
    np.testing.assert_array_equal(x.grad, [2.0, 2.0])


def test_an_array_the_op_keeps_is_copied_before_it_becomes_grad():
    x = leaf([1.0, 2.0])
    op = _Returns(_saved)
    op(x).backward(np.array([1.0, 1.0]))
    assert not np.shares_memory(x.grad, op.kept)
    x.grad += 100.0  # what the next backward's accumulation does to .grad, in place
    np.testing.assert_array_equal(op.kept, [2.0, 2.0])


def test_the_incoming_gradient_passed_on_is_copied_so_grad_never_aliases_the_seed():
    x = leaf([1.0, 2.0])
    seed = np.array([1.0, 1.0])
    _Returns(lambda op, gy: gy)(x).backward(seed)
    assert not np.shares_memory(x.grad, seed)


class _TwoViews(Function):
    """y = a + b; backward returns two distinct view objects of ONE fresh buffer: each alone looks unshared."""

    def forward(self, a, b):
        return a + b

    def backward(self, gy):
        g = gy * 1.0
        return g[:], g[:]


def test_views_of_one_buffer_given_to_two_leaves_are_copied():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    _TwoViews()(a, b).backward(np.array([1.0, 1.0]))
    assert not np.shares_memory(a.grad, b.grad)
    a.grad += 1.0
    np.testing.assert_array_equal(b.grad, [1.0, 1.0])


def test_one_array_returned_for_two_leaves_gives_each_its_own_grad():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    (a + b).backward(np.array([1.0, 1.0]))  # Add.backward hands gy to both inputs
    assert not np.shares_memory(a.grad, b.grad)
    a.grad += 1.0
    np.testing.assert_array_equal(b.grad, [1.0, 1.0])


def _fresh_view(op, gy):
    g = (gy * 2.0).reshape(-1)  # a view whose owner (the product) nothing else refers to
    op.fresh_id = id(g)
    return g.reshape(gy.shape)


def _view_of_kept(op, gy):
    op.kept = gy * 2.0  # the owner stays alive on the op
    return op.kept.reshape(-1).reshape(gy.shape)


def test_a_view_of_a_fresh_buffer_nobody_else_holds_becomes_grad_without_a_copy():
    x = leaf([1.0, 2.0])
    op = _Returns(lambda op, gy: _fresh_view(op, gy))
    op(x).backward(np.array([1.0, 1.0]))
    assert x.grad.base is not None  # kept as it came: still the view
    np.testing.assert_array_equal(x.grad, [2.0, 2.0])


def test_a_view_of_a_buffer_the_op_keeps_is_copied():
    x = leaf([1.0, 2.0])
    op = _Returns(_view_of_kept)
    op(x).backward(np.array([1.0, 1.0]))
    assert not np.shares_memory(x.grad, op.kept)


class _Records(Function):
    """y = 2x; backward records whether the walk let it overwrite its incoming gradient, and then does."""

    def forward(self, x):
        return 2.0 * x

    def backward(self, gy):
        self.could_overwrite = self.may_overwrite(0)
        if self.could_overwrite:
            gy *= 2.0
            return gy
        return 2.0 * gy


def test_an_op_may_overwrite_an_incoming_gradient_only_the_walk_holds():
    x = leaf([1.0, 2.0])
    op = _Records()
    F.exp(op(x)).backward(np.array([1.0, 1.0]))  # exp's gradient is a fresh array: op receives it alone
    assert op.could_overwrite
    np.testing.assert_allclose(x.grad, 2.0 * np.exp(2.0 * np.array([1.0, 2.0])))


def test_an_incoming_gradient_shared_with_another_pending_input_is_not_overwritten():
    """out = 2x + a with a non-leaf a: Add hands the same gy to both branches, so whichever branch runs first
    must not overwrite it; a's gradient stays r, whatever order the walk takes."""
    x, p = leaf([1.0, 2.0]), leaf([0.5, -0.5])
    op = _Records()
    a = F.exp(p)
    r = np.array([3.0, 5.0])
    F.sum((op(x) + a) * r).backward()
    np.testing.assert_allclose(p.grad, r * np.exp([0.5, -0.5]))
    np.testing.assert_allclose(x.grad, 2.0 * r)
    q, y = leaf([0.5, -0.5]), leaf([1.0, 2.0])
    second = _Records()
    F.sum((F.exp(q) + second(y)) * r).backward()  # the other order of the two inputs
    np.testing.assert_allclose(q.grad, r * np.exp([0.5, -0.5]))


def test_a_backward_returning_something_not_an_array_is_named_not_a_traceback_from_the_walk():
    """A fresh list has the reference count of an unshared array: the ownership rule must not touch its attributes
    before _check_grad names the op."""
    x = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match=r"_Returns.backward returned a gradient of shape <class 'list'>"):
        _Returns(lambda op, gy: [1.0, 2.0])(x).backward(np.array([1.0, 1.0]))


def test_an_op_called_by_hand_may_not_overwrite():
    assert not _Records().may_overwrite(0)


def test_diamond_graph_sums_both_paths():
    """x feeds two branches that meet again: z = exp(x) · x²  ->  dz/dx = exp(x) x² + 2x exp(x)."""
    x = leaf([0.3, -1.2])
    u = F.exp(x)
    v = x * x
    z = F.sum(u * v)
    z.backward()
    xv = np.array([0.3, -1.2])
    np.testing.assert_allclose(x.grad, np.exp(xv) * xv ** 2 + 2 * xv * np.exp(xv), rtol=1e-14)


def test_intermediate_used_twice_gets_summed_gradient_once():
    """h = 2x is used by two consumers; the walk must visit h's creator once, with both contributions summed."""
    x = leaf([1.5])
    h = x * 2.0
    z = F.sum(h * h + h)            # dz/dh = 2h + 1, dz/dx = 2(2h + 1) = 2(4x + 1)
    z.backward()
    np.testing.assert_allclose(x.grad, [2 * (4 * 1.5 + 1)], rtol=1e-15)


def test_same_tensor_twice_in_one_op():
    x = leaf([3.0])
    F.sum(x * x).backward()
    np.testing.assert_array_equal(x.grad, [6.0])
    y = leaf([3.0])
    F.sum(y + y).backward()
    np.testing.assert_array_equal(y.grad, [2.0])


def test_broadcast_operand_gets_gradient_summed_to_its_shape():
    x = leaf(np.ones((2, 3, 4)))
    b = leaf(np.ones((3, 1)))
    F.sum((x * b) * 2.0).backward()
    assert b.grad.shape == (3, 1)
    np.testing.assert_array_equal(b.grad, np.full((3, 1), 2.0 * 2 * 4))


# ------------------------------------------------------------------------------------------- no_grad
def test_no_grad_records_nothing():
    x = leaf([1.0, 2.0])
    with nflow.no_grad():
        assert not nflow.is_grad_enabled()
        y = F.exp(x) * x + 1.0
        pieces = F.split(y, 2)
    assert nflow.is_grad_enabled()
    for t in [y] + pieces:
        assert t.creator is None
        assert t.requires_grad is False
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()


def test_enable_grad_inside_no_grad_records_again():
    x = leaf([2.0])
    with nflow.no_grad():
        with nflow.enable_grad():
            y = x * x
        z = x * x
    assert y.requires_grad and y.creator is not None
    assert not z.requires_grad and z.creator is None


def test_no_grad_restores_state_after_an_exception():
    with pytest.raises(ZeroDivisionError):
        with nflow.no_grad():
            1 / 0
    assert nflow.is_grad_enabled()


def test_ops_on_tensors_that_need_no_grad_record_nothing():
    x = Tensor(np.ones(3))
    y = F.exp(x)
    assert y.creator is None and not y.requires_grad


# ------------------------------------------------------------------------------------------- freeing
def test_graph_is_freed_after_backward_and_a_second_backward_raises():
    x = leaf([1.0, 2.0])
    loss = F.sum(F.exp(x) * x)
    loss.backward()
    first = x.grad.copy()
    with pytest.raises(RuntimeError, match=r"already freed.*retain_graph=True"):
        loss.backward()
    np.testing.assert_array_equal(x.grad, first)  # the failed call accumulated nothing


def test_retain_graph_allows_a_second_backward():
    x = leaf([1.0, 2.0])
    loss = F.sum(F.exp(x) * x)
    loss.backward(retain_graph=True)
    once = x.grad.copy()
    loss.backward()
    np.testing.assert_allclose(x.grad, 2 * once, rtol=1e-15)
    with pytest.raises(RuntimeError, match="already freed"):
        loss.backward()


def test_function_nodes_drop_inputs_and_saved_arrays_after_backward():
    x = leaf(np.linspace(0.1, 1.0, 1000))
    h = F.exp(x)           # Exp saves its output (h's data)
    z = h * h              # Mul saves both inputs
    nodes = [h.creator, z.creator]
    h_data = weakref.ref(h.data)
    z_data = weakref.ref(z.data)
    loss = F.sum(z)
    nodes.append(loss.creator)
    del h, z
    assert h_data() is not None  # alive: the graph holds it for backward
    loss.backward()
    for fn in nodes:
        assert not hasattr(fn, "saved"), fn.name
        assert not hasattr(fn, "inputs"), fn.name
    del nodes
    # nothing else owns the intermediates' arrays: they are gone at once, without the cycle collector
    assert h_data() is None
    assert z_data() is None
    gc.collect()
    assert x.grad is not None and x.data is not None


def test_intermediates_stay_alive_while_the_graph_is_retained():
    x = leaf(np.ones(10))
    h = F.exp(x)
    h_data = weakref.ref(h.data)
    loss = F.sum(h * 2.0)
    del h
    loss.backward(retain_graph=True)
    assert h_data() is not None
    loss.backward()
    assert h_data() is None


def test_no_grad_ops_keep_nothing_for_backward():
    from nflow.ops.elementwise import Exp
    x = leaf(np.ones(10))
    with nflow.no_grad():
        fn = Exp()
        fn(x)
    assert not hasattr(fn, "saved") and not hasattr(fn, "inputs")


# ------------------------------------------------------------------------------------------- errors
def test_backward_on_non_scalar_without_grad_raises():
    x = leaf([1.0, 2.0])
    y = x * 2.0
    with pytest.raises(RuntimeError, match=r"non-scalar.*\(2,\).*grad="):
        y.backward()
    with pytest.raises(ValueError, match="shape"):
        y.backward(np.ones(3))
    y.backward(np.array([1.0, 10.0]))
    np.testing.assert_array_equal(x.grad, [2.0, 20.0])


class _WrongShape(Function):
    def forward(self, x):
        return x * 2

    def backward(self, gy):
        return gy[:-1] * 2


class _WrongDtype(Function):
    def forward(self, x):
        return x * 2

    def backward(self, gy):
        return (gy * 2).astype(np.float32)


class _WrongCount(Function):
    def forward(self, x):
        return x * 2

    def backward(self, gy):
        return gy * 2, gy


def test_custom_function_with_wrong_gradient_shape_or_dtype_raises_naming_the_op():
    x = leaf([1.0, 2.0, 3.0])
    with pytest.raises(RuntimeError, match=r"_WrongShape\.backward.*shape \(2,\).*shape \(3,\)"):
        F.sum(_WrongShape()(x)).backward()
    x = leaf([1.0, 2.0, 3.0])
    with pytest.raises(RuntimeError, match=r"_WrongDtype\.backward.*float32.*float64"):
        F.sum(_WrongDtype()(x)).backward()
    x = leaf([1.0, 2.0, 3.0])
    with pytest.raises(RuntimeError, match=r"_WrongCount\.backward returned 2 gradients for 1 inputs"):
        F.sum(_WrongCount()(x)).backward()


def test_wrong_gradient_from_an_op_in_the_middle_is_caught_there():
    """The check is per node, not only at the leaves: a wrong shape deep inside the graph names its op."""
    x = leaf([1.0, 2.0, 3.0])
    y = F.exp(_WrongShape()(x * 1.0))
    with pytest.raises(RuntimeError, match="_WrongShape"):
        F.sum(y).backward()


def test_mixing_float32_and_float64_raises():
    a = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    b = Tensor(np.ones(3, dtype=np.float64), requires_grad=True)
    for fn in (lambda: a + b, lambda: a - b, lambda: a * b, lambda: a / b, lambda: a ** b):
        with pytest.raises(TypeError, match="float32 and float64"):
            fn()
    with pytest.raises(TypeError, match="dtypes"):
        F.matmul(a.reshape(1, 3), b.reshape(3, 1))
    with pytest.raises(TypeError, match="dtypes"):
        F.concat([a, b])
    with pytest.raises(TypeError, match="float32 and float64"):
        a + np.ones(3)  # a float64 array is not silently cast either
    # Python scalars take the tensor's dtype
    assert (a * 2.0).dtype == np.float32 and (2.0 * a).dtype == np.float32


@pytest.mark.parametrize("array", [np.arange(3), np.arange(3, dtype=np.int8), np.array([True, False]),
                                   np.array([1.0, "a"], dtype=object), np.array([1 + 2j])])
def test_tensor_refuses_non_float_arrays(array):
    with pytest.raises(TypeError, match="floating-point"):
        Tensor(array)


def test_tensor_refuses_lists_and_tensors():
    with pytest.raises(TypeError, match="nflow.tensor"):
        Tensor([1.0, 2.0])
    with pytest.raises(TypeError, match="already a Tensor"):
        Tensor(Tensor(np.ones(2)))
    with pytest.raises(TypeError, match="object"):
        nflow.tensor(np.array([1.0, None], dtype=object))
    t = nflow.tensor([1, 2])  # lists and integer data are converted explicitly by nflow.tensor
    assert t.dtype == np.float32


# ------------------------------------------------------------------------------------------- multi-output ops
def test_unused_outputs_of_split_get_zero_gradient():
    x = leaf(np.arange(6.0))
    a, b, c = F.split(x, 3)
    F.sum(b * 5.0).backward()
    np.testing.assert_array_equal(x.grad, [0, 0, 5, 5, 0, 0])


def test_split_output_dropped_by_the_user_gets_zero_gradient():
    x = leaf(np.arange(4.0))
    first = F.split(x, [1])[0]   # the second piece is garbage the moment split returns
    F.sum(first * 3.0).backward()
    np.testing.assert_array_equal(x.grad, [3, 0, 0, 0])


def test_both_split_outputs_used_at_different_depths():
    x = leaf(np.arange(1.0, 5.0))
    a, b = F.split(x, 2)
    a = F.exp(F.exp(a))          # deeper path
    loss = F.sum(a) + F.sum(b * b)
    loss.backward()
    xv = np.arange(1.0, 5.0)
    expected = np.concatenate([np.exp(np.exp(xv[:2])) * np.exp(xv[:2]), 2 * xv[2:]])
    np.testing.assert_allclose(x.grad, expected, rtol=1e-14)
