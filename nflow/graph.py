"""The autodiff graph of one step, as data: every node, and the memory the graph keeps alive for backward.

``nflow.graph(loss)`` walks the graph recorded behind a tensor (iteratively: a Glow graph is thousands of nodes
deep) and returns a :class:`Graph` that holds no reference to it: only op names, shapes, dtypes and byte counts,
so looking at a graph never keeps its memory alive. ``graph.summary()`` (and ``print(graph)``) says where a step's
memory goes; ``graph.write_dot(path)`` draws it with Graphviz (``dot -Tsvg graph.dot > graph.svg``).

What a node keeps is what the tensor core really holds between forward and backward (nflow/tensor.py):

- its recorded inputs (``node.inputs``: strong references to the input tensors, hence to their arrays);
- every array it stored in ``forward`` (``node.saved``: an array, or tuples / lists / dicts of them, nested);
- any array in its other attributes (an index array ``GetItem`` keeps): it lives as long as the node does.

Its outputs are held only weakly, so they are not the node's: an output is kept by the nodes that read it (as
their input) or by the caller. Gradients are not part of the graph either; backward makes them.

Bytes are counted as memory is held: per *buffer*, not per array. A view (``x.T``, ``x[::2]``, a reshape) holds its
base's whole buffer, which the ``.base`` chain leads to; an array referenced by several nodes, or twice by one
(``y * y`` records ``y`` twice and saves its array twice), is one buffer. Each buffer is counted once in the
totals, at its full size (``nbytes`` of the array that owns it; NumPy and CuPy alike, nothing imported).

Buffers are of two kinds, by who made them:

- *leaf* buffers: the arrays of leaves, tensors no op recorded: parameters and inputs, the 0-d constants an op
  makes of a Python number (``x * 2.0``), and results of ops on tensors that need no gradient (a preprocessed
  input, a zero log-det);
- *intermediate* buffers: every other one, an array an op made in the step.

``bytes_by_op`` attributes each intermediate buffer to the *first* node that keeps it in forward order (nodes
sorted by generation, oldest first, a topological order; one generation in the order the walk from the root
reached it): the op that took it into the graph, e.g. ``Exp``, which saves its output, rather than the ``Mul``
that reads that output next. The per-op numbers add up to ``intermediate_bytes``.

Which buffers only the graph holds is a separate question, answered from CPython's reference counts: a buffer
is *graph-only* when no tensor or array on it is referenced from outside the graph (see :class:`_Holdings`).
Parameters, an input the caller holds, the root's own array and a tensor of the step kept in a variable are not;
most intermediates are, and so are constants and no-grad results. ``graph_only_bytes`` is exactly what
``backward()`` frees (it releases every node; the gradients it makes are new memory), and what deleting the root
frees besides the root's own array (tests/test_graph_summary.py measures both with ``tracemalloc``).
"""
import collections
import dataclasses
import sys

from nflow.atomic import atomic_write
from nflow.tensor import Tensor

# ``.base`` hops followed from an array to the object that owns its memory; NumPy collapses view chains, so real
# chains are one or two hops (a view of a Numba array, an ``as_strided`` result through its DummyArray).
MAX_BASE_HOPS = 64
BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")
BYTES_PER_UNIT = 1024
# What a bare `print(graph)` / format_summary() lists: the ops that keep the most, then one line for the rest.
SUMMARY_ROWS = 20
# Attributes of a node that are graph bookkeeping, not arrays it keeps: its edges (walked, not scanned as
# attributes) and the weakly held outputs with their recorded shapes.
_BOOKKEEPING = frozenset({"inputs", "outputs", "output_meta", "needs_input_grad"})


# ---------------------------------------------------------------------------------------------------------
# What graph() returns
# ---------------------------------------------------------------------------------------------------------
class Source(collections.namedtuple("Source", "kind index output")):
    """Where a node's input comes from: ``kind`` "node" (``index`` into ``Graph.nodes``, ``output`` the
    producer's output number) or "leaf" (``index`` into ``Graph.leaves``, ``output`` None)."""

    __slots__ = ()


@dataclasses.dataclass(frozen=True)
class Node:
    """One op node. ``referenced_bytes``: the distinct buffers it keeps (inputs, saved arrays, array attributes),
    leaves included, each once; ``kept_bytes``: the intermediate buffers attributed to it (the first node to keep
    a buffer, in forward order); these add up to ``Graph.intermediate_bytes``. ``freed``: backward already
    released it (only inside a graph whose root is intact: an earlier backward from a tensor of the step)."""
    index: int
    op: str
    generation: int
    sources: tuple
    input_shapes: tuple
    input_dtypes: tuple
    output_shapes: tuple
    output_dtypes: tuple
    referenced_bytes: int
    kept_bytes: int
    freed: bool = False


@dataclasses.dataclass(frozen=True)
class Leaf:
    """A tensor no op created, as an input of the graph: its ``name`` (None unless set), shape, dtype,
    whether it requires grad, the bytes of the buffer its array lies in, and whether only the graph holds that
    buffer (a constant, or the result of ops on tensors that need no gradient, such as a preprocessed input)."""
    index: int
    name: str
    shape: tuple
    dtype: str
    requires_grad: bool
    nbytes: int
    graph_only: bool


@dataclasses.dataclass(frozen=True)
class Buffer:
    """One distinct block of memory the graph keeps: its size, whether a leaf's array lies in it, the node it is
    attributed to (the first in forward order that keeps it), and whether nothing outside the graph holds it."""
    nbytes: int
    leaf: bool
    node: int
    graph_only: bool


@dataclasses.dataclass(frozen=True)
class Summary:
    """Where a step's memory goes. ``nodes_by_op``: nodes per op; ``bytes_by_op``: intermediate bytes per op
    (each buffer once, attributed to the first node keeping it); both ordered by bytes, most first.
    ``intermediate_bytes`` (arrays ops made) + ``leaf_bytes`` (parameters, inputs, constants) = ``total_bytes``.
    ``graph_only_bytes``: the buffers nothing outside the graph holds, what backward or dropping the graph frees."""
    n_nodes: int
    n_leaves: int
    nodes_by_op: dict
    bytes_by_op: dict
    intermediate_bytes: int
    leaf_bytes: int
    total_bytes: int
    graph_only_bytes: int

    def as_dict(self):
        return dataclasses.asdict(self)


class Graph:
    """The graph behind one tensor: ``nodes`` (forward order), ``leaves``, ``buffers``, ``root`` (the index of
    the node that made the tensor) and the totals. Holds no reference to the graph itself."""

    def __init__(self, nodes, leaves, buffers, root, root_shape, root_dtype):
        self.nodes, self.leaves, self.buffers = tuple(nodes), tuple(leaves), tuple(buffers)
        self.root, self.root_shape, self.root_dtype = root, root_shape, root_dtype

    @property
    def intermediate_bytes(self):
        return sum(b.nbytes for b in self.buffers if not b.leaf)

    @property
    def leaf_bytes(self):
        return sum(b.nbytes for b in self.buffers if b.leaf)

    @property
    def total_bytes(self):
        return sum(b.nbytes for b in self.buffers)

    @property
    def graph_only_bytes(self):
        return sum(b.nbytes for b in self.buffers if b.graph_only)

    def summary(self):
        counts, kept = collections.Counter(), collections.Counter()
        for node in self.nodes:
            counts[node.op] += 1
            kept[node.op] += node.kept_bytes
        order = sorted(counts, key=lambda op: (-kept[op], -counts[op], op))
        return Summary(n_nodes=len(self.nodes), n_leaves=len(self.leaves),
                       nodes_by_op={op: counts[op] for op in order}, bytes_by_op={op: kept[op] for op in order},
                       intermediate_bytes=self.intermediate_bytes, leaf_bytes=self.leaf_bytes,
                       total_bytes=self.total_bytes, graph_only_bytes=self.graph_only_bytes)

    def format_summary(self, rows=SUMMARY_ROWS):
        """A table of the ops that keep the most (at most ``rows``, the rest on one line), then the totals."""
        s = self.summary()
        root = self.nodes[self.root]
        lines = [f"autodiff graph of a {_shape_text(self.root_shape)} {self.root_dtype} tensor made by {root.op}: "
                 f"{s.n_nodes} nodes, {s.n_leaves} leaves, {len(self.buffers)} distinct buffers",
                 f"{'op':<28}{'nodes':>7}{'kept':>12}{'share':>8}"]
        ops = list(s.nodes_by_op)
        shown, rest = ops[:rows], ops[rows:]
        for op in shown:
            lines.append(f"{op:<28}{s.nodes_by_op[op]:>7}{format_bytes(s.bytes_by_op[op]):>12}"
                         f"{_share(s.bytes_by_op[op], s.intermediate_bytes):>8}")
        if rest:
            rest_bytes = sum(s.bytes_by_op[op] for op in rest)
            lines.append(f"{f'({len(rest)} more ops)':<28}{sum(s.nodes_by_op[op] for op in rest):>7}"
                         f"{format_bytes(rest_bytes):>12}{_share(rest_bytes, s.intermediate_bytes):>8}")
        for title, n in (("intermediate arrays (made by the ops above)", s.intermediate_bytes),
                         ("leaves (parameters, inputs, constants)", s.leaf_bytes),
                         ("total", s.total_bytes),
                         ("held only by the graph (backward frees it)", s.graph_only_bytes)):
            lines.append(f"{title + ':':<44}{format_bytes(n):>11}  ({n:,} bytes)")
        return "\n".join(lines)

    def __str__(self):
        return self.format_summary()

    def __repr__(self):
        return (f"<Graph: {len(self.nodes)} nodes, {len(self.leaves)} leaves, {format_bytes(self.intermediate_bytes)} "
                f"intermediate, {format_bytes(self.graph_only_bytes)} graph-only>")

    def to_dot(self):
        """The graph in Graphviz DOT: op nodes (ellipses: op, output shape, bytes kept; the root drawn double, a
        freed node dashed), leaves (boxes: name, or shape), one edge per recorded input, producer -> consumer."""
        lines = ["digraph nflow_graph {",
                 '  node [fontname="Helvetica", fontsize=10];',
                 '  edge [arrowsize=0.6];']
        for leaf in self.leaves:
            title = leaf.name if leaf.name is not None else _shape_text(leaf.shape)
            label = [title, f"{_shape_text(leaf.shape)} {leaf.dtype}" if leaf.name is not None else leaf.dtype,
                     format_bytes(leaf.nbytes)]
            lines.append(f"  l{leaf.index} [shape=box, label={_dot_label(label)}];")
        for node in self.nodes:
            shapes = ", ".join(_shape_text(s) for s in node.output_shapes)
            label = [node.op, f"{shapes} {'/'.join(sorted(set(node.output_dtypes)))}",
                     "freed" if node.freed else f"keeps {format_bytes(node.kept_bytes)}"]
            style = ", peripheries=2" if node.index == self.root else ""
            style += ", style=dashed" if node.freed else ""
            lines.append(f"  n{node.index} [shape=ellipse, label={_dot_label(label)}{style}];")
        for node in self.nodes:
            for src in node.sources:
                lines.append(f"  {'n' if src.kind == 'node' else 'l'}{src.index} -> n{node.index};")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def write_dot(self, path):
        """Write :meth:`to_dot` to ``path`` atomically (the old file or the whole new one, never half)."""
        text = self.to_dot()
        atomic_write(path, lambda f: f.write(text), mode="w")


# ---------------------------------------------------------------------------------------------------------
# The walk
# ---------------------------------------------------------------------------------------------------------
def graph(root):
    """The recorded graph behind ``root`` (a tensor an op made, e.g. a loss), as a :class:`Graph`.

    Call it between forward and backward: backward frees the graph (unless ``retain_graph=True``).
    """
    if not isinstance(root, Tensor):
        raise TypeError(f"nflow.graph: needs a Tensor that an op made (a loss), got {type(root).__name__}")
    if root.creator is None:
        raise ValueError(f"nflow.graph: this {_shape_text(root.shape)} tensor is a leaf, so no graph is recorded "
                         "behind it (a parameter, an input, a tensor made by nflow.tensor(), or the result of ops "
                         "run under no_grad() or on tensors that do not require grad); pass a tensor computed "
                         "from ones that require grad, such as the loss")
    if getattr(root.creator, "freed", False):
        raise RuntimeError(f"nflow.graph: the graph behind this tensor was already freed by backward() (its "
                           f"{root.creator.name} node let go of its inputs and saved arrays); call nflow.graph(loss) "
                           "before loss.backward(), or run backward(retain_graph=True)")
    fns = _reachable(root.creator)
    # forward order: generation ascending (every node after the nodes it reads); a stable sort keeps the walk's
    # order inside one generation
    fns.sort(key=lambda fn: fn.generation)
    holdings = _Holdings()
    referenced = [holdings.scan(fn) for fn in fns]  # per node: {buffer key: nbytes}
    graph_only = holdings.graph_only_buffers()
    nodes, leaves, buffers = _describe(fns, referenced, holdings, graph_only)
    return Graph(nodes, leaves, buffers, root=fns.index(root.creator), root_shape=tuple(root.shape),
                 root_dtype=str(root.dtype))


def _reachable(start):
    """Every node reachable from ``start`` through its inputs' creators, breadth first, without recursion."""
    seen, order, queue = {id(start)}, [start], collections.deque([start])
    while queue:
        fn = queue.popleft()
        for x in _recorded_inputs(fn):
            parent = x.creator
            if parent is not None and id(parent) not in seen:
                seen.add(id(parent))
                order.append(parent)
                queue.append(parent)
    return order


def _recorded_inputs(fn):
    # a node backward already released has no inputs any more: the walk stops there, as backward would
    return fn.__dict__.get("inputs", ())


class _Holdings:
    """What the graph references, and which of it nothing outside the graph references.

    :meth:`scan` visits everything a node holds (its inputs tuple, its attributes, the containers in them, each
    tensor's array, each array's ``.base`` chain) and counts, per object, the references the graph itself
    accounts for: one per tuple / list / dict slot or attribute holding it, one per distinct tensor whose
    ``.data`` it is, one per distinct object whose ``.base`` it is. An object whose CPython reference count is
    larger is held from outside too: by the caller (a parameter, an input, the root, a tensor kept in a variable),
    a module, or a view the graph never saw. A buffer is *graph-only* when no tensor or array on it is.
    """

    def __init__(self):
        self.objects = {}                         # id -> tensor / array / base object (held while we count)
        self.internal = collections.Counter()     # id -> references from inside the graph
        self.members = collections.defaultdict(set)  # buffer key -> ids of the tensors and arrays on it
        self.sizes = {}                           # buffer key -> nbytes
        self.leaf_buffers = set()
        self._expanded = set()

    def scan(self, fn):
        """Count the references node ``fn`` holds; return {buffer key: nbytes} of the distinct buffers it keeps."""
        kept = {}
        # each slot of the inputs tuple and each attribute is one reference; bookkeeping attributes hold none
        stack = [(x, None) for x in _recorded_inputs(fn)]
        stack += [(v, None) for name, v in vars(fn).items() if name not in _BOOKKEEPING]
        while stack:
            value, key = stack.pop()  # key: the buffer of the array whose .base led here, else None
            if isinstance(value, Tensor):
                self._count(value)
                if id(value) not in self._expanded:
                    self._expanded.add(id(value))
                    stack.append((value.data, None))
                data_key = self._buffer_key(value.data)
                self.members[data_key].add(id(value))
                if value.creator is None:
                    self.leaf_buffers.add(data_key)
                kept[data_key] = self.sizes[data_key]
            elif _is_array(value) or key is not None:  # an array, or an object on an array's .base chain
                self._count(value)
                key = key if key is not None else self._buffer_key(value)
                self.members[key].add(id(value))
                kept[key] = self.sizes[key]
                base = getattr(value, "base", None)
                if id(value) not in self._expanded:
                    self._expanded.add(id(value))
                    if base is not None:
                        stack.append((base, key))
            elif isinstance(value, (tuple, list, set, frozenset, dict)) and id(value) not in self._expanded:
                self._expanded.add(id(value))  # a container met twice: its slots are counted once
                stack.extend((v, None) for v in (value.values() if isinstance(value, dict) else value))
        return kept

    def _count(self, obj):
        self.objects.setdefault(id(obj), obj)
        self.internal[id(obj)] += 1

    def _buffer_key(self, array):
        key, nbytes = _buffer(array)
        self.sizes.setdefault(key, nbytes)
        return key

    def graph_only_buffers(self):
        """The keys of the buffers on which no tensor or array is referenced from outside the graph."""
        baseline = _reference_counts({0: object()})[0]  # an object only the dict holds
        counts = _reference_counts(self.objects)
        held = {i for i, count in counts.items() if count - baseline != self.internal[i]}
        self.objects.clear()  # let go of everything before graph() returns
        return {key for key, ids in self.members.items() if not ids & held}


def _reference_counts(objects):
    # One code path for the probe and the real objects, so both carry the same references of this very call
    # (the dict slot, the iteration, the argument), whatever the interpreter version adds.
    return {i: sys.getrefcount(obj) for i, obj in objects.items()}


def _describe(fns, referenced, holdings, graph_only):
    """Nodes, leaves and buffers as plain data; each buffer attributed to the first node (forward order) keeping it."""
    position = {id(fn): i for i, fn in enumerate(fns)}
    leaf_index, leaves = {}, []
    attributed = {}  # buffer key -> node index
    nodes = []
    for i, (fn, kept) in enumerate(zip(fns, referenced)):
        inputs = _recorded_inputs(fn)
        sources = []
        for x in inputs:
            if x.creator is not None:
                sources.append(Source("node", position[id(x.creator)], _output_number(x)))
                continue
            if id(x) not in leaf_index:
                key, nbytes = _buffer(x.data)
                leaf_index[id(x)] = len(leaves)
                leaves.append(Leaf(len(leaves), x.name, tuple(x.shape), str(x.dtype), bool(x.requires_grad),
                                   nbytes, key in graph_only))
            sources.append(Source("leaf", leaf_index[id(x)], None))
        own = 0
        for key in kept:
            if key not in attributed:
                attributed[key] = i
                own += 0 if key in holdings.leaf_buffers else kept[key]
        shapes, dtypes = _outputs(fn)
        nodes.append(Node(index=i, op=fn.name, generation=fn.generation, sources=tuple(sources),
                          input_shapes=tuple(tuple(x.shape) for x in inputs),
                          input_dtypes=tuple(str(x.dtype) for x in inputs),
                          output_shapes=shapes, output_dtypes=dtypes, referenced_bytes=sum(kept.values()),
                          kept_bytes=own, freed=bool(getattr(fn, "freed", False))))
    buffers = [Buffer(holdings.sizes[key], key in holdings.leaf_buffers, node, key in graph_only)
               for key, node in attributed.items()]
    return nodes, leaves, buffers


def _output_number(x):
    for k, ref in enumerate(x.creator.outputs):
        if ref() is x:
            return k
    return None


def _outputs(fn):
    """Output shapes and dtypes: from the outputs still alive, else as recorded when the node was called."""
    shapes, dtypes = [], []
    for ref, (shape, dtype) in zip(fn.outputs, fn.output_meta):
        out = ref()
        shapes.append(tuple(out.shape) if out is not None else tuple(shape))
        dtypes.append(str(out.dtype) if out is not None else str(dtype))
    return tuple(shapes), tuple(dtypes)


def _is_array(value):
    # NumPy and CuPy arrays (and NumPy scalars) alike, without importing CuPy
    return hasattr(value, "nbytes") and hasattr(value, "shape") and hasattr(value, "dtype")


def _buffer(array):
    """(key, nbytes) of the memory ``array`` lies in: the ``.base`` chain is followed to its end, the object
    that owns the memory; its id is the key (unique while the graph is alive, which it is during the walk).
    The size is that owner's ``nbytes`` if it is an array, else the size of its buffer (a Numba allocation, an
    mmap, bytes), else the last array on the chain's (an ``as_strided`` result's DummyArray holds no memory)."""
    last_array, obj = array, array
    for _ in range(MAX_BASE_HOPS):
        base = getattr(obj, "base", None)
        if base is None:
            break
        obj = base
        if _is_array(obj):
            last_array = obj
    if obj is last_array:
        return id(obj), int(obj.nbytes)
    try:
        with memoryview(obj) as view:
            return id(obj), int(view.nbytes)
    except TypeError:  # no buffer protocol: the last array on the chain is the owner we can size
        return id(last_array), int(last_array.nbytes)


# ---------------------------------------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------------------------------------
def format_bytes(n):
    """``n`` bytes in binary units, e.g. 512 B, 1.5 KiB, 12.0 MiB."""
    value, unit = float(n), BYTE_UNITS[0]
    for unit in BYTE_UNITS:
        if abs(value) < BYTES_PER_UNIT or unit == BYTE_UNITS[-1]:
            break
        value /= BYTES_PER_UNIT
    return f"{int(value)} {unit}" if unit == BYTE_UNITS[0] else f"{value:.1f} {unit}"


def _share(part, whole):
    return f"{100.0 * part / whole:.1f}%" if whole else "-"


def _shape_text(shape):
    return "(" + ", ".join(str(n) for n in shape) + ")"


def _dot_label(lines):
    """A quoted DOT label of several lines: quotes and backslashes escaped, lines joined by DOT's \\n."""
    return '"' + "\\n".join(str(s).replace("\\", "\\\\").replace('"', '\\"') for s in lines) + '"'
