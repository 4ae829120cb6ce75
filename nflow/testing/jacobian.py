"""Central differences in float64, independent of the code under test: per-sample Jacobians and directional
derivatives, each refusing to answer across a non-smooth point.

A central difference (f(x + h) - f(x - h)) / 2h is good to O(h²) where f is smooth, but next to a kink (a ReLU in
a coupling's network, |x|, a clamp) it averages two slopes and can be off by half their jump. Every difference
here evaluates f at x, x ± h and x ± 2h and computes the kink indicator of ``tolerances.KINK_RTOL`` (zero up to
O(h²) for a smooth f, at least a sixth of the slope's jump for a kink within h of x); when it is too large the
difference raises :class:`NonSmooth` instead of returning a wrong number, and the caller moves the point
(``check.py``). The tolerance of the comparison is never widened for it.
"""
import numpy as np

from nflow.testing.tolerances import FD_STEP, KINK_RTOL, rounding_floor

JACOBIAN_CHUNK = 64   # columns per batch of perturbed copies (4 × this many rows through the layer at once)
# Exact perturbations: base points (and the parameters of the layer whose map is differenced) are snapped to
# multiples of BASE_GRID, directions to multiples of DIRECTION_GRID, so x + k·h·v (k = ±1, ±2, h = 2⁻²⁰) is a
# multiple of 2⁻³⁶ and exact in float64 for |x| < 2¹⁷. Snapping moves a point by at most 2⁻³⁷ ≈ 7e-12.
DIRECTION_GRID = 2.0 ** -16
BASE_GRID = FD_STEP * DIRECTION_GRID
EXACT_LIMIT = 2.0 ** 17
OFFSETS = (1.0, -1.0, 2.0, -2.0)  # multiples of the step h at which f is evaluated besides x itself


def snap(a, grid=BASE_GRID):
    """``a`` (float64) rounded to multiples of ``grid``, where that is exact (|a| < 2¹⁷); else unchanged."""
    a = np.asarray(a, dtype=np.float64)
    if a.size and float(np.max(np.abs(a))) >= EXACT_LIMIT:
        return a
    return np.round(a / grid) * grid


def snap_direction(v):
    return snap(v, DIRECTION_GRID)


class NonSmooth(Exception):
    """A central difference straddles a point where the map is not differentiable; ``what`` says which one."""

    def __init__(self, what, indicator, allowed):
        super().__init__(f"{what}: kink indicator {indicator:.3g} > {allowed:.3g} (a non-smooth point within 2h)")
        self.what, self.indicator, self.allowed = what, indicator, allowed


def smooth_central(f0, f_h, f_mh, f_2h, f_m2h, step, what, input_scale=0.0):
    """(f(x + h) - f(x - h)) / 2h, after checking that f is smooth on [x - 2h, x + 2h].

    The arguments are float64 arrays of one shape: f at x, x + h, x - h, x + 2h, x - 2h (h = ``step``); every entry
    is a separate function (output coordinates, or columns of a Jacobian). ``input_scale``: max |x| of the point
    differenced, whose rounding inside the map moves f by about u·|x|·|f'| (added to the rounding allowance).
    Raises :class:`NonSmooth` naming ``what`` and the worst entry.
    """
    central, central2 = (f_h - f_mh) / (2 * step), (f_2h - f_m2h) / (4 * step)
    gap = (f_h - 2 * f0 + f_mh) / step              # D+(h) - D-(h)
    gap2 = (f_2h - 2 * f0 + f_m2h) / (2 * step)     # D+(2h) - D-(2h)
    indicator = np.abs(central - central2) + np.abs(gap2 - 2 * gap)
    slope = float(np.max(np.abs(central))) if central.size else 0.0
    values = max(float(np.max(np.abs(f))) for f in (f0, f_h, f_mh, f_2h, f_m2h)) if f0.size else 0.0
    allowed = KINK_RTOL * slope + 8 * rounding_floor(max(values, input_scale * slope), step)
    if indicator.size and float(np.max(indicator)) > allowed:
        worst = np.unravel_index(int(np.argmax(indicator)), indicator.shape)
        raise NonSmooth(f"{what}, entry {tuple(int(i) for i in worst)}", float(indicator[worst]), allowed)
    return central


def directional_derivative(fn, step=FD_STEP, what="direction", input_scale=0.0):
    """d/dt fn(t) at t = 0 by a central difference; ``fn(t)`` returns a float64 array (the map at x + t·v)."""
    return smooth_central(fn(0.0), *(fn(k * step) for k in OFFSETS), step, what, input_scale)


def per_sample_jacobian(fn, x, step=FD_STEP, what="Jacobian"):
    """J = ∂fn(x)/∂x for ONE sample ``x`` (its per-sample shape), by central differences in float64.

    ``fn`` maps a float64 batch (B,) + x.shape to a float64 array (B, M) with no interaction between rows (the
    caller checks that the layer keeps samples apart before trusting this). Column i comes from the copies
    x + k·step·e_i (k = ±1, ±2), pushed through ``fn`` as batches of perturbed copies, ``JACOBIAN_CHUNK`` columns
    at a time. Returns J of shape (M, D). Raises :class:`NonSmooth` when a column straddles a kink.
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
