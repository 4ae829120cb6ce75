"""nflow.graph: the recorded graph of a step as data, and the memory it reports against what is really freed.

The byte counts of the small expressions are worked out by hand from what each op's docstring says it keeps
(plus the inputs the tensor core records for every node). The memory tests measure with ``tracemalloc``, filtered
to NumPy's own trace domain (``np.lib.tracemalloc_domain``): NumPy reports every data buffer there at exactly its
``nbytes`` (an empty array at 1 byte; there is none here), and nothing else goes there (Python objects, Tensors,
nodes, tuples, array headers are traced in the default domain). So the comparison is exact, with a tolerance of
zero: the overhead of Python objects, which would otherwise need one, cannot enter it.
"""
import gc
import importlib
import os
import re
import sys
import tracemalloc
import weakref

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

import nflow
import nflow.functional as F
from nflow import Tensor
from nflow.models.glow import Glow

graph_module = importlib.import_module("nflow.graph")  # the attribute nflow.graph is the function
F32 = np.dtype(np.float32).itemsize
F64 = np.dtype(np.float64).itemsize


def leaf(shape, dtype=np.float32, name=None, seed=0):
    return Tensor(np.random.default_rng(seed).standard_normal(shape).astype(dtype), requires_grad=True, name=name)


# ---------------------------------------------------------------------------------------------- by hand
def test_a_small_expression_node_by_node():
    """loss = Σ exp(x @ w)²: what each node keeps, worked out by hand.

    MatMul records x (4×3) and w (3×5) and saves the same two arrays: 48 + 60 bytes, both leaves.
    Exp records h = x @ w and saves its output e = exp(h): two 4×5 float32 buffers, 80 + 80, both intermediate.
    Mul records y twice and saves y's array twice: one buffer, e again (already Exp's).
    Sum records p = y * y: 80 bytes. The loss's own array is kept by no node.
    """
    x, w = leaf((4, 3), name="x"), leaf((3, 5), name="w", seed=1)
    y = F.exp(x @ w)
    loss = F.sum(y * y)
    g = nflow.graph(loss)

    assert [(n.op, n.generation) for n in g.nodes] == [("MatMul", 1), ("Exp", 2), ("Mul", 3), ("Sum", 4)]
    S = graph_module.Source
    assert [n.sources for n in g.nodes] == [
        (S("leaf", 0, None), S("leaf", 1, None)), (S("node", 0, 0),), (S("node", 1, 0), S("node", 1, 0)),
        (S("node", 2, 0),)]
    assert [n.input_shapes for n in g.nodes] == [((4, 3), (3, 5)), ((4, 5),), ((4, 5), (4, 5)), ((4, 5),)]
    assert [n.output_shapes for n in g.nodes] == [((4, 5),), ((4, 5),), ((4, 5),), ((),)]
    assert all(n.input_dtypes == ("float32",) * len(n.sources) and n.output_dtypes == ("float32",)
               for n in g.nodes)
    assert [n.referenced_bytes for n in g.nodes] == [12 * F32 + 15 * F32, 2 * 20 * F32, 20 * F32, 20 * F32]
    assert [n.kept_bytes for n in g.nodes] == [0, 2 * 20 * F32, 0, 20 * F32]
    assert [(lf.name, lf.shape, lf.dtype, lf.requires_grad, lf.nbytes) for lf in g.leaves] == [
        ("x", (4, 3), "float32", True, 48), ("w", (3, 5), "float32", True, 60)]
    assert g.root == 3 and g.root_shape == () and g.root_dtype == "float32"

    s = g.summary()
    assert s.n_nodes == 4 and s.n_leaves == 2
    assert s.nodes_by_op == {"Exp": 1, "Sum": 1, "MatMul": 1, "Mul": 1}
    assert list(s.bytes_by_op.items()) == [("Exp", 160), ("Sum", 80), ("MatMul", 0), ("Mul", 0)]  # most first
    assert (s.intermediate_bytes, s.leaf_bytes, s.total_bytes) == (240, 108, 348)
    # this test still holds y, so Exp's saved output (y's array) would outlive the graph: only h and y·y would not
    assert s.graph_only_bytes == 160 and [b.graph_only for b in g.buffers if not b.leaf].count(True) == 2
    assert s.as_dict()["bytes_by_op"] == s.bytes_by_op

    text = str(g)
    assert text == g.format_summary()
    assert [row.split()[:2] for row in text.splitlines()[2:6]] == [["Exp", "1"], ["Sum", "1"], ["MatMul", "1"],
                                                                  ["Mul", "1"]]
    assert "(240 bytes)" in text and "(108 bytes)" in text and "(348 bytes)" in text and "(160 bytes)" in text
    assert repr(g) == "<Graph: 4 nodes, 2 leaves, 240 B intermediate, 160 B graph-only>"


def test_the_summary_table_folds_the_smallest_ops_into_one_line():
    x = leaf((2, 3))
    loss = F.sum(F.tanh(F.exp(x) * 2.0 + 1.0))
    text = nflow.graph(loss).format_summary(rows=2)
    assert "(3 more ops)" in text and len(text.splitlines()) == 2 + 2 + 1 + 4  # titles, rows, rest, totals


def test_the_roots_own_array_and_a_parameter_are_not_graph_only():
    x = leaf((3, 4))
    loss = F.exp(F.sum(x, axis=1))  # Exp saves its output: the root's array, which the caller holds as the root
    g = nflow.graph(loss)
    assert loss.creator.saved is loss.data
    # x (a leaf the caller holds), Σx (Exp's input: only the graph holds it), exp(Σx) (saved, and the root's)
    assert sorted((b.nbytes, b.leaf, b.graph_only) for b in g.buffers) == [(12, False, False), (12, False, True),
                                                                          (48, True, False)]
    assert g.graph_only_bytes == 12 and g.intermediate_bytes == 24 and not g.leaves[0].graph_only


def test_an_array_used_twice_is_counted_once():
    x = leaf((10, 10))
    g = nflow.graph(F.sum(x * x))   # Mul records x twice and saves x.data twice: one buffer
    assert len(g.leaves) == 1 and g.leaf_bytes == x.data.nbytes
    assert g.nodes[0].referenced_bytes == x.data.nbytes
    # Sum keeps the product; the total is two buffers
    assert g.intermediate_bytes == 100 * F32 and g.total_bytes == 200 * F32


def test_a_view_is_counted_as_its_whole_base():
    """A slice keeps its base's whole buffer alive, so that is what it costs, once however many views share it."""
    base = np.random.default_rng(0).standard_normal((6, 4))
    a, b = Tensor(base[:, :2], requires_grad=True), Tensor(base[:, 2:], requires_grad=True)
    g = nflow.graph(F.sum(a * b))
    assert [lf.nbytes for lf in g.leaves] == [base.nbytes, base.nbytes]
    assert g.leaf_bytes == base.nbytes  # two leaves, one buffer
    assert g.intermediate_bytes == 6 * 2 * F64  # Sum keeps the product

    # an intermediate view: GetItem records h, Exp records the one-row view h[:1]; both are h's one buffer
    x, w = leaf((5, 3), np.float64), leaf((3, 7), np.float64, seed=1)
    h = x @ w
    loss = F.sum(F.exp(h[:1]))
    g = nflow.graph(loss)
    assert [n.op for n in g.nodes] == ["MatMul", "GetItem", "Exp", "Sum"]
    assert [n.kept_bytes for n in g.nodes] == [0, 5 * 7 * F64, 7 * F64, 0]  # Sum reads the array Exp saved
    assert g.intermediate_bytes == h.data.nbytes + 7 * F64

    # as_strided's result reaches its base through a DummyArray: still the base's 12 bytes, not 4×3 elements
    small = np.ones(3, np.float32)
    g = nflow.graph(F.sum(Tensor(as_strided(small, (4, 3), (0, F32)), requires_grad=True) * 1.0))
    assert g.leaves[0].nbytes == small.nbytes


def test_a_deep_graph_is_walked_without_recursion():
    x = leaf((3,))
    y = x
    for _ in range(3000):
        y = F.exp(y * 0.5) - 1.0
    g = nflow.graph(F.sum(y))
    assert len(g.nodes) == 9001 and g.summary().nodes_by_op == {"Mul": 3000, "Exp": 3000, "Sub": 3000, "Sum": 1}
    assert sys.getrecursionlimit() < 9001


# ---------------------------------------------------------------------------------------------- refusals
def test_a_leaf_is_refused():
    with pytest.raises(ValueError, match=r"nflow.graph: this \(2, 3\) tensor is a leaf, so no graph is recorded"):
        nflow.graph(leaf((2, 3)))
    with nflow.no_grad():
        y = F.exp(leaf((2, 3)))
    with pytest.raises(ValueError, match="no_grad"):
        nflow.graph(y)
    with pytest.raises(TypeError, match="nflow.graph: needs a Tensor that an op made .a loss., got ndarray"):
        nflow.graph(np.ones(3))


def test_a_graph_freed_by_backward_is_refused_and_a_retained_one_is_not():
    x = leaf((2, 3))
    loss = F.sum(F.exp(x))
    loss.backward(retain_graph=True)
    assert nflow.graph(loss).intermediate_bytes == 6 * F32
    loss.backward()
    with pytest.raises(RuntimeError, match=r"already freed by backward\(\) \(its Sum node let go of its inputs"):
        nflow.graph(loss)


def test_a_node_freed_by_an_earlier_backward_inside_a_live_graph_is_shown_as_freed():
    x = leaf((2, 3))
    s = F.sum(F.exp(x))
    s.backward()          # frees Sum and Exp
    loss = s * 3.0        # a new node on top of the freed ones
    g = nflow.graph(loss)
    assert [(n.op, n.freed, n.sources, n.kept_bytes) for n in g.nodes] == [
        ("Sum", True, (), 0), ("Mul", False, (graph_module.Source("node", 0, 0), graph_module.Source("leaf", 0, None)),
                           F32)]
    assert g.nodes[0].output_shapes == ((),)  # still known: recorded when the node was called
    assert "freed" in g.to_dot()


# ---------------------------------------------------------------------------------------------- DOT
def test_dot_has_one_line_per_node_and_leaf_and_one_edge_per_recorded_input(tmp_path, monkeypatch):
    x, w = leaf((4, 3), name='x "in"'), leaf((3, 5), seed=1)
    loss = F.sum(F.exp(x @ w) * F.exp(x @ w))
    g = nflow.graph(loss)
    dot = g.to_dot()
    lines = dot.splitlines()
    assert lines[0] == "digraph nflow_graph {" and lines[-1] == "}"
    node_lines = [ln for ln in lines if re.match(r"  n\d+ \[", ln)]
    leaf_lines = [ln for ln in lines if re.match(r"  l\d+ \[", ln)]
    edges = [ln for ln in lines if "->" in ln]
    assert len(node_lines) == len(g.nodes) == 6 and len(leaf_lines) == len(g.leaves) == 2
    assert len(edges) == sum(len(n.sources) for n in g.nodes) == 2 + 2 + 1 + 1 + 2 + 1
    assert all("shape=box" in ln for ln in leaf_lines)
    assert 'label="x \\"in\\"\\n(4, 3) float32\\n48 B"' in dot      # named leaf, quotes escaped
    assert 'label="(3, 5)\\nfloat32\\n60 B"' in dot                  # unnamed: its shape
    assert 'label="Exp\\n(4, 5) float32\\nkeeps 160 B"' in dot
    assert sum("peripheries=2" in ln for ln in node_lines) == 1      # the root
    assert dot.count("{") == dot.count("}") == 1

    calls = []
    real = graph_module.atomic_write
    monkeypatch.setattr(graph_module, "atomic_write", lambda *a, **k: (calls.append(k.get("mode")), real(*a, **k)))
    path = tmp_path / "step.dot"
    g.write_dot(path)
    assert calls == ["w"] and path.read_text(encoding="utf-8") == dot
    assert os.listdir(tmp_path) == ["step.dot"]  # no temporary left beside it


# ---------------------------------------------------------------------------------------------- memory
def numpy_traced_bytes():
    """The bytes of NumPy data buffers alive now, among those allocated since tracing started."""
    snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.DomainFilter(True, np.lib.tracemalloc_domain)])
    return sum(trace.size for trace in snapshot.traces)


@pytest.fixture
def traced():
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    yield
    if started:
        tracemalloc.stop()


@pytest.mark.parametrize("held", ["nothing", "h", "view of h"])
def test_dropping_the_graph_frees_exactly_its_graph_only_bytes(traced, held):
    """A chain with a matmul, a value used twice, a transpose view, slices and saved outputs (~2.2 MB, float64).

    The caller holds the leaves x and w, the root, and, in two runs, h = x @ w or a NumPy view of one row of h's
    array (which keeps all of h's buffer). Deleting the root drops the graph: freed are the graph-only buffers,
    plus the root's own array (kept by no node). Leaves, and h's buffer when held, stay.
    """
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((256, 128)), requires_grad=True)
    w = Tensor(rng.standard_normal((128, 192)) * 0.05, requires_grad=True)
    h = x @ w
    z = F.exp(h)
    z = z * z
    t = F.tanh(z.T)
    loss = F.sum(t[::2] * t[1::2])
    caller = [x, w] + {"nothing": [], "h": [h], "view of h": [h.data[0]]}[held]  # what we hold beside the root
    del h, z, t
    g = nflow.graph(loss)
    # intermediates: h and exp(h) (Exp keeps both), z² (Transpose records it), tanh's output (Tanh saves it; both
    # slices are views of it), the product of the slices (Sum): 256·192 float64 each but the last, half of that
    full = 256 * 192 * F64
    assert g.intermediate_bytes == 4.5 * full
    assert g.graph_only_bytes == (4.5 if held == "nothing" else 3.5) * full
    gc.collect()
    before = numpy_traced_bytes()
    root_bytes = loss.data.nbytes
    creator = weakref.ref(loss.creator)
    del loss
    gc.collect()
    freed = before - numpy_traced_bytes()
    assert creator() is None  # the Graph kept no reference to the graph
    assert freed == g.graph_only_bytes + root_bytes == (1_769_480 if held == "nothing" else 1_376_264)
    assert len(caller) == (2 if held == "nothing" else 3)


@pytest.mark.parametrize("how", ["backward", "del"])
def test_a_glow_step_frees_exactly_its_graph_only_bytes(traced, how):
    """A small Glow's log-likelihood on the numpy backend (every buffer a NumPy allocation: a Numba kernel's own
    allocations would bypass tracemalloc). ``backward()`` frees the graph and makes one gradient per parameter;
    deleting the loss frees the graph and the loss's own array:

        freed by backward = graph_only_bytes - (the gradients' bytes);   freed by del = graph_only_bytes + 4.

    Graph-only beside the intermediates: leaves the caller never held, the 0-d constants made of Python numbers,
    the per-sample zero log-dets the layers start from, and the squeezed input (Centre and Squeeze ran on a
    tensor that needs no gradient, so their result is a leaf).
    """
    with nflow.backend("numpy"):
        nflow.seed(0)
        model = Glow((1, 8, 8), levels=2, steps=2, hidden=8)
        x = Tensor(np.random.default_rng(0).random((4, 1, 8, 8)).astype(np.float32))
        model.log_prob(x)  # ActNorm's data-dependent initialisation happens on the first call
        loss = -F.mean(model.log_prob(x))
        g = nflow.graph(loss)
        gc.collect()
        before = numpy_traced_bytes()
        if how == "backward":
            loss.backward()
        else:
            del loss
        gc.collect()
        freed = before - numpy_traced_bytes()
    assert {(lf.shape, lf.requires_grad) for lf in g.leaves if lf.graph_only} == {
        ((), False), ((4,), False), ((4, 4, 4, 4), False)}
    assert not any(lf.graph_only for lf in g.leaves if lf.requires_grad or lf.shape == x.shape)
    assert g.graph_only_bytes > g.intermediate_bytes  # the graph-only leaves
    if how == "backward":
        grads = sum(p.grad.nbytes for p in model.parameters() if p.grad is not None)
        assert freed == g.graph_only_bytes - grads
    else:
        assert freed == g.graph_only_bytes + F32
