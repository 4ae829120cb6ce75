"""Additive coupling, join part: y = x with m(x_a) added to the transformed channel block (NICE).

NICE (Dinh et al. 2014, eq. 5) splits x into a conditioning part x_a and a transformed part x_b and maps

    y_a = x_a,    y_b = x_b + m(x_a),    log|det ∂y/∂x| = 0      (the Jacobian is unit triangular)

The network m is evaluated by the layer; what is left is element-wise, and the point of a kernel is to fuse it
with the join: rather than split x into views, add, and concatenate (a full extra copy of y), one pass writes
all of y. Which channels form x_b is a contiguous block ``[start, start + C_b)`` of axis 1 (the coupling's
parity decides whether it is the first or the second block).

Arrays: ``x`` of shape (N, C, ...) (2-D for NICE's vectors, 4-D for images), ``shift`` = m(x_a) of shape
(N, C_b, ...) with the same trailing axes, one floating dtype. Cost: O(N·C·P) for P elements per channel, one
pass, memory-bound (read x and shift, write y).

Gradients (y = x + E·shift, with E the embedding of channels [start, start + C_b) into C):

    forward:  ∂L/∂x = gy,    ∂L/∂shift = gy[:, start:start + C_b]
    inverse:  x = y - E·shift, so ∂L/∂y = gx,    ∂L/∂shift = -gx[:, start:start + C_b]

The full-size gradient is the incoming one itself, returned as is (no copy); only the slice is materialised.
:func:`check` and :func:`check_block` are the contract every implementation of the family checks first.
"""
import operator

from nflow.backend import get_array_module
from nflow.kernels.contract import require_float, require_ndim

FAMILY = "additive coupling"


def check_block(name, a, start, width):
    """``a`` float32/float64 of shape (N, C, ...), and channels [start, start + width) inside its C channels.
    Returns (start, width) as ints."""
    require_float(FAMILY, name, a)
    require_ndim(FAMILY, name, a, (2,), "(N, C, ...)")
    start, width = operator.index(start), operator.index(width)
    if start < 0 or width < 0 or start + width > a.shape[1]:
        raise ValueError(f"{FAMILY} kernel: channels [{start}, {start + width}) must lie within the {a.shape[1]} "
                         f"channels of {name} (shape {tuple(a.shape)})")
    return start, width


def check(name, a, shift, start):
    """The family's contract for the maps: ``a`` (x or y) of shape (N, C, ...), ``shift`` of shape (N, C_b, ...)
    with the same batch and trailing axes and dtype, its block [start, start + C_b) inside C. Returns start."""
    require_float(FAMILY, name, a)
    if shift.dtype != a.dtype:
        raise TypeError(f"{FAMILY} kernel: shift is {shift.dtype} but {name} is {a.dtype}; both must share one "
                        "float dtype")
    require_ndim(FAMILY, name, a, (2,), "(N, C, ...)")
    if shift.ndim != a.ndim or shift.shape[0] != a.shape[0] or shift.shape[2:] != a.shape[2:]:
        expected = (a.shape[0], "C_b") + tuple(a.shape[2:])
        raise ValueError(f"{FAMILY} kernel: shift must have shape {expected} for {name} of shape {tuple(a.shape)}, "
                         f"got {tuple(shift.shape)}")
    return check_block(name, a, start, shift.shape[1])[0]


def _block(a, start, width):
    """Channels [start, start + width) of ``a`` (a view)."""
    return a[:, start:start + width]


def forward(x, shift, start):
    """y = x, with y[:, start:start + C_b] = x[:, start:start + C_b] + shift."""
    start = check("x", x, shift, start)
    y = x.copy()
    _block(y, start, shift.shape[1])[...] += shift
    return y


def inverse(y, shift, start):
    """x = y, with x[:, start:start + C_b] = y[:, start:start + C_b] - shift."""
    start = check("y", y, shift, start)
    x = y.copy()
    _block(x, start, shift.shape[1])[...] -= shift
    return x


def forward_backward(gy, start, width):
    """(∂L/∂x, ∂L/∂shift) = (gy, gy[:, start:start + width]) given gy = ∂L/∂y; the slice is C-contiguous."""
    start, width = check_block("gy", gy, start, width)
    xp = get_array_module(gy)
    return gy, xp.ascontiguousarray(_block(gy, start, width))


def inverse_backward(gx, start, width):
    """(∂L/∂y, ∂L/∂shift) = (gx, -gx[:, start:start + width]) given gx = ∂L/∂x (the negation is a new
    array)."""
    start, width = check_block("gx", gx, start, width)
    return gx, -_block(gx, start, width)
