"""Additive coupling, join part, as Numba kernels: the CPU twin of ``kernels/reference/additive_coupling.py``.

The equations (NICE, Dinh et al. 2014, eq. 5; copied from the NumPy twin, which is the reference these kernels
are tested against), with channels [start, start + C_b) of axis 1 the transformed block:

    forward:            y = x,  y[:, start:start + C_b] = x[:, start:start + C_b] + shift,     log-det 0
    inverse:            x = y,  x[:, start:start + C_b] = y[:, start:start + C_b] - shift
    forward_backward:   ∂L/∂x = gy,   ∂L/∂shift =  gy[:, start:start + C_b]
    inverse_backward:   ∂L/∂y = gx,   ∂L/∂shift = -gx[:, start:start + C_b]

What is fused: the layer used to split x into views, add m(x_a) to one and concatenate the parts (a full
extra copy of y); here one pass writes all of y. In a C-ordered (N, C, P) array the channels [start, stop) of
sample n are one contiguous run of the sample's C·P elements, [start·P, stop·P); so each sample is three
unit-stride loops, copy / add / copy, whatever the number of trailing axes (2-D vectors: P = 1; images:
P = H·W). The backward's full-size gradient is the incoming one, returned as is (no copy), exactly as the twin
does; only the slice ∂L/∂shift is written, by one loop per sample. ``prange`` over the batch, built serial
(see ``kernels/cpu/__init__.py``).

Arrays: ``x`` (N, C, ...) and ``shift`` (N, C_b, ...) with the same trailing axes and one float dtype (float32
or float64). Non-contiguous inputs (channel slices) are copied to C order by the wrappers before the call,
since the loops assume it. ``NUMBA_DISABLE_JIT=1`` runs these loops as plain Python.
"""
import numpy as np
from numba import njit, prange

from nflow.kernels.cpu import PARALLEL
from nflow.kernels.reference.additive_coupling import check, check_block


# --------------------------------------------------------------------------------------------- kernels
# error_model="numpy": no Python exception checks inside the loops (they would stop vectorisation); there is
# no division here, the flag keeps every kernel of this folder compiled the same way.
@njit(cache=True, parallel=PARALLEL, error_model="numpy")
def _join(x, shift, offset, subtract, y):
    """y[n] = x[n] with shift[n] added (or subtracted) on the run [offset, offset + M_b) of each row."""
    n_samples, m = x.shape
    mb = shift.shape[1]
    stop = offset + mb
    for n in prange(n_samples):
        # 1-D slices indexed from 0: LLVM sees unit-stride, non-negative indices and vectorises each loop
        xs, ys = x[n], y[n]
        for j in range(offset):                       # channels before the block: a copy
            ys[j] = xs[j]
        xb, yb, ss = x[n, offset:stop], y[n, offset:stop], shift[n]
        if subtract:                                  # the branch is outside the loop, so both loops vectorise
            for j in range(mb):
                yb[j] = xb[j] - ss[j]
        else:
            for j in range(mb):
                yb[j] = xb[j] + ss[j]
        for j in range(stop, m):                      # channels after the block: a copy
            ys[j] = xs[j]


@njit(cache=True, parallel=PARALLEL, error_model="numpy")
def _block(g, offset, negate, out):
    """out[n] = g[n, offset:offset + M_b] (or its negation): the gradient of the shift."""
    n_samples, mb = out.shape
    for n in prange(n_samples):
        src, dst = g[n, offset:offset + mb], out[n]
        if negate:
            for j in range(mb):
                dst[j] = -src[j]
        else:
            for j in range(mb):
                dst[j] = src[j]


# --------------------------------------------------------------------------------------------- wrappers
def _rows(a):
    """``a`` as a C-ordered (N, M) array (copies only a non-contiguous view)."""
    return np.ascontiguousarray(a).reshape(a.shape[0], -1)


def _run_length(a):
    """Elements per channel, P: channel c of a row is the run [c·P, (c + 1)·P)."""
    return int(np.prod(a.shape[2:], dtype=np.int64))


def _map(a, name, shift, start, subtract):
    start = check(name, a, shift, start)
    rows, shift_rows = _rows(a), _rows(shift)
    out = np.empty_like(rows)
    _join(rows, shift_rows, start * _run_length(a), subtract, out)
    return out.reshape(a.shape)


def _slice(g, name, start, width, negate):
    start, width = check_block(name, g, start, width)
    rows = _rows(g)
    p = _run_length(g)
    out = np.empty((g.shape[0], width * p), dtype=g.dtype)
    _block(rows, start * p, negate, out)
    return out.reshape((g.shape[0], width) + tuple(g.shape[2:]))


def forward(x, shift, start):
    """y = x, with shift added to channels [start, start + C_b)."""
    return _map(x, "x", shift, start, False)


def inverse(y, shift, start):
    """x = y, with shift subtracted from channels [start, start + C_b)."""
    return _map(y, "y", shift, start, True)


def forward_backward(gy, start, width):
    """(∂L/∂x, ∂L/∂shift) = (gy, gy[:, start:start + width]) given gy = ∂L/∂y."""
    return gy, _slice(gy, "gy", start, width, False)


def inverse_backward(gx, start, width):
    """(∂L/∂y, ∂L/∂shift) = (gx, -gx[:, start:start + width]) given gx = ∂L/∂x."""
    return gx, _slice(gx, "gx", start, width, True)
