"""Central differences in float64, independent of the code under test: per-sample Jacobians and directional
derivatives, each refusing to answer across a non-smooth point.

The difference and its kink indicator are :mod:`nflow.finite_differences` (shared with :func:`nflow.gradcheck`):
evaluations at x, x ± h and x ± 2h; where they reveal a kink within 2h,
:class:`~nflow.finite_differences.NonDifferentiablePoint` is raised instead of a wrong number, and the caller moves
the point (``check.py``). The tolerance of the comparison is never widened for it. What is added here: perturbed
copies pushed through the layer as batches (a whole Jacobian at once), and steps that are exact in float64.
"""
import numpy as np

from nflow.finite_differences import FD_STEP, OFFSETS, central_difference, smooth_central

JACOBIAN_CHUNK = 64   # columns per batch of perturbed copies (4 × this many rows through the layer at once)
# Exact perturbations: base points (and the parameters of the layer whose map is differenced) are snapped to
# multiples of BASE_GRID, directions to multiples of DIRECTION_GRID, so x + k·h·v (k = ±1, ±2, h = 2⁻²⁰) is a
# multiple of 2⁻³⁶ and exact in float64 for |x| < 2¹⁷. Snapping moves a point by at most 2⁻³⁷ ≈ 7e-12.
DIRECTION_GRID = 2.0 ** -16
BASE_GRID = FD_STEP * DIRECTION_GRID
EXACT_LIMIT = 2.0 ** 17


def snap(a, grid=BASE_GRID):
    """``a`` (float64) rounded to multiples of ``grid``, where that is exact (|a| < 2¹⁷); else unchanged."""
    a = np.asarray(a, dtype=np.float64)
    if a.size and float(np.max(np.abs(a))) >= EXACT_LIMIT:
        return a
    return np.round(a / grid) * grid


def snap_direction(v):
    return snap(v, DIRECTION_GRID)


def directional_derivative(fn, step=FD_STEP, what="direction", input_scale=0.0):
    """d/dt fn(t) at t = 0 by a checked central difference; ``fn(t)`` returns a float64 array (the map at x + t·v).
    The step is not shrunk here: the caller moves the point instead, keeping every step on the exact grid."""
    return central_difference(fn, step, what, input_scale=input_scale)


def per_sample_jacobian(fn, x, step=FD_STEP, what="Jacobian"):
    """J = ∂fn(x)/∂x for ONE sample ``x`` (its per-sample shape), by central differences in float64.

    ``fn`` maps a float64 batch (B,) + x.shape to a float64 array (B, M) with no interaction between rows (the
    caller checks that the layer keeps samples apart before trusting this). Column i comes from the copies
    x + k·step·e_i (k = ±1, ±2), pushed through ``fn`` as batches of perturbed copies, ``JACOBIAN_CHUNK`` columns
    at a time. Returns J of shape (M, D). Raises :class:`~nflow.finite_differences.NonDifferentiablePoint` when a column straddles
    a kink.
    """
    x = np.asarray(x, dtype=np.float64)
    flat = x.reshape(-1)
    d = flat.size
    f0 = np.asarray(fn(x[None]), dtype=np.float64)[0]
    shifted = [np.empty((f0.size, d)) for _ in OFFSETS]
    for start in range(0, d, JACOBIAN_CHUNK):
        cols = np.arange(start, min(d, start + JACOBIAN_CHUNK))
        rows = np.repeat(flat[None], len(OFFSETS) * cols.size, axis=0)
        for k, offset in enumerate(OFFSETS):
            rows[k * cols.size + np.arange(cols.size), cols] += offset * step
        out = np.asarray(fn(rows.reshape((len(rows),) + x.shape)), dtype=np.float64)
        for k in range(len(OFFSETS)):
            shifted[k][:, cols] = out[k * cols.size:(k + 1) * cols.size].T
    f0_cols = np.repeat(f0[:, None], d, axis=1)
    return smooth_central(f0_cols, *shifted, step, what, input_scale=float(np.max(np.abs(flat))) if d else 0.0)
