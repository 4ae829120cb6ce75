"""The tensor core: ``Tensor`` (an array plus its place in the graph) and ``Function`` (an op node).

Reverse-mode autodiff in three ideas:

1. Every op is a :class:`Function` with ``forward(*arrays) -> arrays`` and ``backward(*grad_outputs) -> grads``.
   Calling it on tensors records a node: its inputs (strong references: they are the graph's edges and what
   backward may read) and its outputs (weak references: the user owns them).
2. A node's ``generation`` is one more than the newest of its inputs' creators, so sorting nodes by
   generation, newest first, is a reverse topological order.
3. :meth:`Tensor.backward` walks nodes with a heap ordered by generation (never by recursion: a Glow graph is
   thousands of nodes deep), hands each node the gradients of its outputs, and routes the returned input
   gradients on. Gradients of intermediate tensors live only in the walk; leaves accumulate into ``.grad``.

What backward keeps is stated by each op: the inputs it records (``self.inputs``), and any arrays it stores
on itself in ``forward`` (``self.saved``). After backward the graph is freed: every visited node drops its
inputs and saved arrays, so memory returns at once and a second backward through it is an error.
"""
import contextlib
import heapq
import itertools
import sys
import weakref

import numpy as np

from nflow.backend import array_module_for_backend, get_array_module, is_cupy_array

DEFAULT_DTYPE = np.float32
FLOAT_DTYPES = (np.float16, np.float32, np.float64)

# ---------------------------------------------------------------------------------------------------------
# Recording on / off
# ---------------------------------------------------------------------------------------------------------
_grad_enabled = True


def is_grad_enabled():
    return _grad_enabled


@contextlib.contextmanager
def no_grad():
    """Run ops without recording a graph: outputs have no creator and hold no references to inputs."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


@contextlib.contextmanager
def enable_grad():
    """Record a graph again inside a ``no_grad`` block (used by the reversible training path)."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, True
    try:
        yield
    finally:
        _grad_enabled = previous


def _check_float_array(array, where):
    if not hasattr(array, "dtype") or array.dtype.type not in FLOAT_DTYPES:
        got = getattr(array, "dtype", type(array).__name__)
        raise TypeError(f"{where}: needs a floating-point array (float16/32/64), got dtype {got}")


# ---------------------------------------------------------------------------------------------------------
# Tensor
# ---------------------------------------------------------------------------------------------------------
class Tensor:
    """A NumPy or CuPy array with the graph bookkeeping reverse mode needs.

    ``data``: the array (floating point). ``grad``: accumulated gradient, an array of the same shape and
    backend, or ``None``. ``requires_grad``: whether gradients flow to this tensor. ``creator``: the
    :class:`Function` that produced it (``None`` for leaves).
    """

    __slots__ = ("data", "grad", "requires_grad", "creator", "name", "__weakref__")
    # Make NumPy defer to Tensor's reflected operators in ``ndarray + Tensor``.
    __array_priority__ = 1000

    def __init__(self, data, requires_grad=False, name=None):
        if isinstance(data, Tensor):
            raise TypeError("Tensor(data): data is already a Tensor; use it directly or pass t.data")
        if not (isinstance(data, np.ndarray) or is_cupy_array(data)):
            raise TypeError(f"Tensor(data): data must be a NumPy or CuPy array, got {type(data).__name__}; "
                            "use nflow.tensor(...) to convert lists and scalars")
        _check_float_array(data, "Tensor")
        self.data = data
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self.creator = None
        self.name = name

    # -- array-like attributes ------------------------------------------------------------------------
    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def size(self):
        return self.data.size

    @property
    def dtype(self):
        return self.data.dtype

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        body = repr(self.data).replace("\n", "\n" + " " * 7)
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({body}{grad})"

    def numpy(self):
        """The data as a NumPy array on the host (a copy only when it lives on the GPU)."""
        from nflow.backend import to_numpy
        return to_numpy(self.data)

    def item(self):
        return self.data.item()

    def detach(self):
        """The same data, cut from the graph."""
        return Tensor(self.data)

    def zero_grad(self):
        self.grad = None

    # -- reverse mode ---------------------------------------------------------------------------------
    def backward(self, grad=None, retain_graph=False):
        """Back-propagate from this tensor to every leaf that requires a gradient.

        ``grad`` is d(loss)/d(self); it may be omitted only when ``self`` holds a single element.
        With ``retain_graph=False`` (the default) each visited node is freed as soon as it has passed
        its gradients on, so a second ``backward`` through the same graph raises.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad: no input of the "
                               "computation that produced it requires grad (or it ran under no_grad())")
        xp = get_array_module(self.data)
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward() on a non-scalar tensor of shape {self.shape} needs grad=, "
                                   "an array of the same shape (d loss / d this tensor)")
            grad = xp.ones_like(self.data)
        else:
            grad = grad.data if isinstance(grad, Tensor) else grad
            if not hasattr(grad, "shape") or grad.shape != self.shape:
                raise ValueError(f"backward(grad=...): grad has shape {getattr(grad, 'shape', None)}, "
                                 f"the tensor has shape {self.shape}")
            grad = grad.astype(self.dtype, copy=False)
        if self.creator is None:  # a leaf: its gradient is the seed itself
            self._accumulate(grad)
            return
        _backprop(self, grad, retain_graph)

    def _accumulate(self, grad, owned=False):
        # The first gradient becomes .grad: the array itself when the walk owns it (``owned``: nothing else refers
        # to it, see _unshared), else a copy, so .grad never aliases a buffer someone else holds. In place after.
        if self.grad is None:
            self.grad = grad if owned else grad.copy()
        else:
            self.grad += grad

    # -- operators ------------------------------------------------------------------------------------
    # + - * / ** @, unary -, [], .T, reshape, transpose, sum and mean build op nodes, which live in nflow/ops and
    # import this module; nflow/ops/operators.py binds them to this class once, when nflow is imported.


def tensor(data, requires_grad=False, dtype=None):
    """Make a leaf :class:`Tensor` from a list, scalar or array, on the current backend's device.

    Lists, scalars and integer arrays become ``float32`` (nflow's default) unless ``dtype`` says
    otherwise; floating arrays keep their dtype.
    """
    if isinstance(data, Tensor):
        data = data.data
    xp = array_module_for_backend()
    if dtype is None:
        is_float = hasattr(data, "dtype") and data.dtype.type in FLOAT_DTYPES
        dtype = data.dtype if is_float else DEFAULT_DTYPE
    if hasattr(data, "dtype") and data.dtype.kind not in "biuf":
        raise TypeError(f"nflow.tensor: cannot make a float tensor from dtype {data.dtype}")
    array = xp.asarray(data, dtype=dtype)
    return Tensor(array.copy() if array is data else array, requires_grad=requires_grad)


def as_tensor(value, like):
    """``value`` as a Tensor that can meet ``like`` (a Tensor) in an op.

    Python and NumPy scalars take ``like``'s dtype (so ``x * 2`` stays float32). Arrays must already
    have the same dtype: nflow never up-casts silently.
    """
    if isinstance(value, Tensor):
        return value
    if np.isscalar(value) or (hasattr(value, "shape") and value.shape == () and not isinstance(value, Tensor)):
        xp = get_array_module(like.data)
        return Tensor(xp.asarray(value, dtype=like.dtype))
    if isinstance(value, np.ndarray) or is_cupy_array(value):
        return Tensor(value)
    raise TypeError(f"cannot combine a Tensor with {type(value).__name__}")


# ---------------------------------------------------------------------------------------------------------
# Function: one op node
# ---------------------------------------------------------------------------------------------------------
class Function:
    """Base class of every op. Subclasses implement ``forward(*arrays)`` and ``backward(*grad_outputs)``.

    ``forward`` receives arrays and returns an array or a tuple of arrays. It may store what backward needs
    on ``self`` (``self.saved = ...``). ``backward`` receives one gradient array per output (zeros stand in
    for outputs that received none) and returns one gradient per input, or ``None`` for an input that needs
    none. The base class checks every returned gradient's shape and dtype and names the op when one is wrong.
    """

    generation = 0
    # Set by the walk before each backward: for each output gradient, whether nothing else refers to its memory
    owned_grads = ()

    def may_overwrite(self, i):
        """Whether ``backward`` may write into its ``i``-th incoming gradient: the walk found that nothing but
        the call refers to its memory (see ``_unshared``). False when backward is called by hand."""
        return i < len(self.owned_grads) and self.owned_grads[i]

    def __call__(self, *inputs):
        inputs = tuple(_to_tensor_input(x, inputs) for x in inputs)
        xs = [x.data for x in inputs]
        if len(xs) > 1:
            get_array_module(*xs)  # raises on a NumPy/CuPy mix, naming no op yet
        self.validate(*xs)
        # known before forward runs, so an op can pick a cheaper forward when no backward will follow
        needs_grad = self.records_graph = _grad_enabled and any(x.requires_grad for x in inputs)
        ys = self.forward(*xs)
        single = not isinstance(ys, tuple)
        ys = (ys,) if single else ys
        # NumPy turns 0-d results into scalars (np.float32); keep everything an array.
        ys = tuple(np.asarray(y) if isinstance(y, np.generic) else y for y in ys)
        outputs = tuple(Tensor(y, requires_grad=needs_grad) for y in ys)
        if needs_grad:
            self.generation = max((x.creator.generation for x in inputs if x.creator is not None), default=0) + 1
            self.inputs = inputs
            self.needs_input_grad = tuple(x.requires_grad for x in inputs)
            self.outputs = tuple(weakref.ref(t) for t in outputs)
            self.output_meta = tuple((y.shape, y.dtype) for y in ys)
            for t in outputs:
                t.creator = self
        else:
            self.release()  # nothing will call backward: drop what forward saved at once
        return outputs[0] if single else list(outputs)

    @property
    def name(self):
        return type(self).__name__

    def validate(self, *xs):
        """Check inputs before ``forward``; raise with the op's name and the shapes that arrived."""

    def forward(self, *xs):
        raise NotImplementedError

    def backward(self, *gys):
        raise NotImplementedError

    def release(self):
        """Drop everything backward would have read: inputs and saved arrays."""
        self.__dict__.pop("saved", None)
        self.__dict__.pop("inputs", None)
        self.freed = True


def _to_tensor_input(x, all_inputs):
    if isinstance(x, Tensor):
        return x
    like = next((t for t in all_inputs if isinstance(t, Tensor)), None)
    if like is None:
        raise TypeError("an op needs at least one Tensor input")
    return as_tensor(x, like)


_tiebreak = itertools.count()


def _backprop(root, seed, retain_graph):
    """Walk the graph from ``root`` in reverse topological order (a heap keyed on generation)."""
    # Gradients waiting for their tensor's creator, keyed by id. The entry also holds the tensor itself: once
    # its consumers are freed it may have no other owner, and its creator finds it through a weak reference.
    grads = {id(root): (root, seed)}
    heap = []
    queued = set()

    def push(fn):
        if fn not in queued:
            queued.add(fn)
            heapq.heappush(heap, (-fn.generation, next(_tiebreak), fn))

    push(root.creator)
    while heap:
        _, _, fn = heapq.heappop(heap)
        if getattr(fn, "freed", False):
            raise RuntimeError(f"backward through {fn.name} whose graph was already freed by an earlier "
                               "backward(); call the first backward with retain_graph=True to go through twice")
        gys = _incoming_gradients(fn, grads)
        fn.owned_grads = _unshared(gys)  # which of them backward may overwrite (Function.may_overwrite)
        gxs = fn.backward(*gys)
        del gys
        if not isinstance(gxs, tuple):
            gxs = (gxs,)
        if len(gxs) != len(fn.inputs):
            raise RuntimeError(f"{fn.name}.backward returned {len(gxs)} gradients for {len(fn.inputs)} inputs")
        owned = _unshared(gxs)
        for x, gx, needed, own in zip(fn.inputs, gxs, fn.needs_input_grad, owned):
            if not needed or gx is None:
                continue
            _check_grad(fn, x, gx)
            if x.creator is None:
                x._accumulate(gx, owned=own)
            else:
                pending = grads.get(id(x))
                grads[id(x)] = (x, gx if pending is None else pending[1] + gx)
                push(x.creator)
        # drop this frame's hold on the gradients passed on, so that the node receiving one next finds the grads
        # dict the only holder and may overwrite it (Function.may_overwrite); it also frees a summed-away one
        gxs = gx = pending = None
        if not retain_graph:
            fn.release()


def _incoming_gradients(fn, grads):
    """The tuple of gradients ``fn.backward`` receives, one per output, taken out of ``grads`` (zeros for an
    output nobody used). Built in this frame, so that on return the tuple is all that refers to them."""
    gys = []
    for ref, (shape, dtype) in zip(fn.outputs, fn.output_meta):
        out = ref()
        gy = grads.pop(id(out), (None, None))[1] if out is not None else None
        if gy is None:  # an output nobody used: its gradient is zero
            xp = get_array_module(fn.inputs[0].data)
            gy = xp.zeros(shape, dtype=dtype)
        gys.append(gy)
    return tuple(gys)


def _reference_counts(arrays):
    return [sys.getrefcount(a) for a in arrays]


def _base_reference_count(a):
    return sys.getrefcount(a.base)


# What the two functions above report for an array that only its tuple refers to, and for the owner of a view's
# memory that only the view refers to, measured on this interpreter with the same functions, so the comparisons
# below hold whatever the interpreter's own counting adds.
_ONLY_IN_ITS_TUPLE = _reference_counts((np.empty(0),))[0]
_ONLY_AS_A_BASE = _base_reference_count(np.empty(4).reshape(2, 2))


def _unshared(arrays):
    """For each array of the tuple ``arrays`` (the gradients an op's backward returned, or those it receives):
    whether nobody else can see its memory, so that the walk may keep it as a leaf's ``.grad`` without a copy and
    an op may overwrite an incoming gradient in place.

    True only when nothing but the tuple refers to the array — not the incoming gradient an op passed on
    (x + y returns gy for both), not a second entry of the same tuple, not an array an op saved or a kernel keeps
    as workspace, not the user's seed — and its memory is its own: it owns it, or it is a view (a reshape of a
    GEMM's fresh result, say) whose owner nothing else refers to, so no other view of that memory is alive.
    Read-only arrays are never given away. Copying was the safe default and cost NICE's training step 30 ms of
    134 (49 copies, 77 MB; issue 12).
    """
    counts = _reference_counts(arrays)
    return [count == _ONLY_IN_ITS_TUPLE and _memory_of_its_own(a) for a, count in zip(arrays, counts)]


def _memory_of_its_own(a):
    """Whether ``a`` is a writable array whose memory no other live array can reach (see :func:`_unshared`).
    Anything else an op may wrongly return (a list, a number) is not: ``_check_grad`` then names the op."""
    flags = getattr(a, "flags", None)
    if flags is None or not hasattr(a, "base") or not getattr(flags, "writeable", True):  # CuPy has no such flag
        return False
    return a.base is None or _base_reference_count(a) == _ONLY_AS_A_BASE


def _check_grad(fn, x, gx):
    if not hasattr(gx, "shape") or gx.shape != x.shape:
        raise RuntimeError(f"{fn.name}.backward returned a gradient of shape {getattr(gx, 'shape', type(gx))} "
                           f"for an input of shape {x.shape}")
    if gx.dtype != x.dtype:
        raise RuntimeError(f"{fn.name}.backward returned a {gx.dtype} gradient for a {x.dtype} input")
