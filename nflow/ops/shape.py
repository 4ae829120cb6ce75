"""Shape ops: reshape, transpose, concat, split, pad and indexing. None of them keeps array data."""
from nflow.backend import get_array_module
from nflow.tensor import Function


class Reshape(Function):
    """y = x viewed with a new shape; the gradient is reshaped back. Keeps: the input's shape."""

    def __init__(self, shape):
        self.shape = tuple(shape)

    def validate(self, x):
        known = 1
        for n in self.shape:
            known *= n if n != -1 else 1
        ok = self.shape.count(-1) <= 1 and (x.size == known if -1 not in self.shape else known and x.size % known == 0)
        if not ok:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} ({x.size} elements) to {self.shape}")

    def forward(self, x):
        self.in_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, gy):
        return gy.reshape(self.in_shape)


class Transpose(Function):
    """y = x with its axes permuted; the gradient gets the inverse permutation. Keeps: the permutation."""

    def __init__(self, axes):
        self.axes = None if axes is None else tuple(axes)

    def validate(self, x):
        if self.axes is not None and sorted(a % x.ndim for a in self.axes) != list(range(x.ndim)):
            raise ValueError(f"transpose: axes {self.axes} are not a permutation of the {x.ndim} axes of {x.shape}")

    def forward(self, x):
        self.perm = tuple(reversed(range(x.ndim))) if self.axes is None else tuple(a % x.ndim for a in self.axes)
        return x.transpose(self.perm)

    def backward(self, gy):
        inverse = [0] * len(self.perm)
        for i, a in enumerate(self.perm):
            inverse[a] = i
        return gy.transpose(inverse)


class Concat(Function):
    """y = [x_1, x_2, ...] joined along ``axis``; each gradient is its slice. Keeps: the split points."""

    def __init__(self, axis):
        self.axis = axis

    def validate(self, *xs):
        ref = xs[0]
        ax = self.axis % ref.ndim
        for x in xs[1:]:
            if x.ndim != ref.ndim or any(a != b for i, (a, b) in enumerate(zip(x.shape, ref.shape)) if i != ax):
                raise ValueError(f"concat along axis {self.axis}: shapes {[t.shape for t in xs]} differ off that axis")
            if x.dtype != ref.dtype:
                raise TypeError(f"concat: dtypes {[t.dtype for t in xs]} differ")

    def forward(self, *xs):
        xp = get_array_module(*xs)
        self.sizes = [x.shape[self.axis] for x in xs]
        return xp.concatenate(xs, axis=self.axis)

    def backward(self, gy):
        xp = get_array_module(gy)
        points = list(_cumsum(self.sizes))[:-1]
        return tuple(xp.split(gy, points, axis=self.axis))


class Split(Function):
    """[y_1, y_2, ...] = x cut along ``axis``; the gradient concatenates (zeros for unused pieces).

    ``sections``: an int (equal pieces) or a list of cut points, as in ``numpy.split``. Keeps: nothing.
    """

    def __init__(self, sections, axis):
        self.sections, self.axis = sections, axis

    def validate(self, x):
        if isinstance(self.sections, int) and x.shape[self.axis] % self.sections:
            raise ValueError(f"split: axis {self.axis} of shape {x.shape} has size {x.shape[self.axis]}, "
                             f"which does not divide into {self.sections} equal pieces")

    def forward(self, x):
        xp = get_array_module(x)
        return tuple(xp.split(x, self.sections, axis=self.axis))

    def backward(self, *gys):
        xp = get_array_module(gys[0])
        return xp.concatenate(gys, axis=self.axis)


class Pad(Function):
    """y = x padded with zeros; ``pad_width`` as in ``numpy.pad``. The gradient is the interior. Keeps: widths."""

    def __init__(self, pad_width):
        self.pad_width = pad_width

    def forward(self, x):
        xp = get_array_module(x)
        self.widths = _normalize_pad(self.pad_width, x.ndim)
        return xp.pad(x, self.widths)

    def backward(self, gy):
        index = tuple(slice(lo, n - hi) for (lo, hi), n in zip(self.widths, gy.shape))
        return gy[index]


class GetItem(Function):
    """y = x[index] (basic or advanced NumPy indexing); the gradient scatters back with ``add.at``.

    Keeps: the index and the input's shape.
    """

    def __init__(self, index):
        self.index = index.data if hasattr(index, "creator") else index

    def forward(self, x):
        self.in_shape, self.in_dtype = x.shape, x.dtype
        return x[self.index]

    def backward(self, gy):
        xp = get_array_module(gy)
        gx = xp.zeros(self.in_shape, dtype=self.in_dtype)
        # Repeated indices must accumulate, which ``gx[index] += gy`` does not do in either library.
        if xp.__name__ == "numpy":
            xp.add.at(gx, self.index, gy)
        else:
            import cupyx
            cupyx.scatter_add(gx, self.index, gy)
        return gx


def _cumsum(values):
    total = 0
    for v in values:
        total += v
        yield total


def _normalize_pad(pad_width, ndim):
    if isinstance(pad_width, int):
        return ((pad_width, pad_width),) * ndim
    widths = [tuple(w) if not isinstance(w, int) else (w, w) for w in pad_width]
    if len(widths) != ndim:
        raise ValueError(f"pad: {len(widths)} (before, after) pairs for a tensor of {ndim} dimensions")
    return tuple(widths)


def reshape(x, shape):
    return Reshape(shape)(x)


def transpose(x, axes=None):
    return Transpose(axes)(x)


def concat(xs, axis=0):
    if not xs:
        raise ValueError("concat: needs at least one tensor")
    return Concat(axis)(*xs)


def split(x, sections, axis=0):
    return Split(sections, axis)(x)


def pad(x, pad_width):
    return Pad(pad_width)(x)


def getitem(x, index):
    return GetItem(index)(x)
