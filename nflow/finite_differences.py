"""Central differences in float64 that refuse to answer across a non-smooth point.

The one implementation behind :func:`nflow.gradcheck` and the property kit :mod:`nflow.testing`.

A central difference (f(x + h) - f(x - h)) / 2h is good to O(h²) where f is smooth, but next to a kink (a ReLU
switching inside a coupling's network, |x|, a clamp) it averages two slopes and can be off by half their jump in
slope. So every difference here also evaluates f at x ± 2h and computes, from the central differences C(h), C(2h)
and the one-sided gaps g(h) = D+(h) - D-(h), g(2h), the kink indicator

    K = |C(h) - C(2h)| + |g(2h) - 2·g(h)|.

For a smooth f, K = h²·|f⁽³⁾|/2 + O(h³) (the linear and quadratic parts cancel in both terms, whatever the first
derivative). For a kink with slope jump Δ at distance δ < h from x, K = Δ·(δ/4h + |3δ - 2h|/2h) ≥ Δ/6 (smallest
at δ = 2h/3). A difference is declared non-smooth when

    K > KINK_RTOL · max|C(h)| + 8 · rounding,

so a kink that goes unnoticed has Δ ≤ 6 × that bound and moves the difference by at most Δ/2. Kinks between h and
2h away are flagged too (harmless: the caller shrinks the step or moves the point). On a non-smooth point
:class:`NonDifferentiablePoint` is raised: callers shrink the step (:func:`central_difference` with ``retries``)
or draw another point; no tolerance is ever widened for it.
"""
import numpy as np

FLOAT64_EPS = float(np.finfo(np.float64).eps)
# Step h = 2⁻²⁰ ≈ 9.5e-7. A power of two, so x ± h is exact for |x| < 2³² (no error in the step itself).
# Truncation of a central difference is h²·|f'''|/6 ≈ 1.5e-13·|f'''|; rounding is about ROUND_ULPS·u·|f|/h
# ≈ 2e-8·|f| with u = 2⁻⁵³ and ROUND_ULPS = 100 ulp for the map's own rounding of f.
FD_STEP = 2.0 ** -20
ROUND_ULPS = 100
# Smooth maps here have |f'''| far below 2·10⁵·|f'| (K ≈ 5e-13·|f'''| against 1e-7·|f'|); a kink is flagged once
# its slope jump exceeds ~6e-7 of the derivative's scale.
KINK_RTOL = 1e-7
OFFSETS = (1.0, -1.0, 2.0, -2.0)  # multiples of the step h at which f is evaluated besides x itself
# :func:`central_difference` retries: each divides h by STEP_SHRINK (a power of two, so steps stay exact), so a
# kink at distance d from x stops mattering once 2h < d; after the last retry the point is declared non-smooth.
STEP_SHRINK = 2.0 ** 7


class NonDifferentiablePoint(ValueError):
    """The map has a kink within 2h of the point: no derivative to check there; ``what`` says which difference."""

    def __init__(self, what, indicator, allowed, step):
        super().__init__(f"{what}: kink indicator {indicator:.3g} > {allowed:.3g} at step {step:.3g} (a ReLU "
                         "switching, a clamp, |x|: a non-smooth point within 2h); check at another point")
        self.what, self.indicator, self.allowed, self.step = what, indicator, allowed, step


def rounding_floor(scale, step=FD_STEP):
    """The rounding error of a float64 central difference of values of size ``scale`` at step ``step``."""
    return ROUND_ULPS * FLOAT64_EPS * scale / step


def smooth_central(f0, f_h, f_mh, f_2h, f_m2h, step, what, value_scale=0.0, input_scale=0.0):
    """(f(x + h) - f(x - h)) / 2h, after checking that f is smooth on [x - 2h, x + 2h].

    The arguments are float64 arrays of one shape: f at x, x + h, x - h, x + 2h, x - 2h (h = ``step``); every entry
    is a separate function (output coordinates, or columns of a Jacobian). ``value_scale``: the magnitude that sets
    the rounding of f when it exceeds |f| itself (a sum with cancellation, Σ g·f, rounds like Σ |g·f|).
    ``input_scale``: max |x| of the point differenced, whose rounding inside the map moves f by about u·|x|·|f'|.
    Raises :class:`NonDifferentiablePoint` naming ``what`` and the worst entry.
    """
    f0, f_h, f_mh, f_2h, f_m2h = (np.asarray(f, dtype=np.float64) for f in (f0, f_h, f_mh, f_2h, f_m2h))
    central, central2 = (f_h - f_mh) / (2 * step), (f_2h - f_m2h) / (4 * step)
    gap = (f_h - 2 * f0 + f_mh) / step              # D+(h) - D-(h)
    gap2 = (f_2h - 2 * f0 + f_m2h) / (2 * step)     # D+(2h) - D-(2h)
    indicator = np.abs(central - central2) + np.abs(gap2 - 2 * gap)
    if not indicator.size:
        return central
    slope = float(np.max(np.abs(central)))
    values = max(float(np.max(np.abs(f))) for f in (f0, f_h, f_mh, f_2h, f_m2h))
    allowed = KINK_RTOL * slope + 8 * rounding_floor(max(values, value_scale, input_scale * slope), step)
    # A NaN indicator passes on purpose: the NaN reaches the caller's comparison, which reports it as a failure
    # (a map that returns NaN near x has a bug to show, not a kink to step around).
    if float(np.max(indicator)) > allowed:
        worst = np.unravel_index(int(np.argmax(indicator)), indicator.shape)
        where = f", entry {tuple(int(i) for i in worst)}" if indicator.ndim else ""
        raise NonDifferentiablePoint(f"{what}{where}", float(indicator[worst]), allowed, step)
    return central


def central_difference(evaluate, step=FD_STEP, what="central difference", value_scale=0.0, input_scale=0.0,
                       retries=0):
    """d/dt f(x + t·v) at t = 0, with ``evaluate(t)`` = f(x + t·v) (a float or a float64 array).

    Evaluates f at t = 0, ±h, ±2h and returns the central difference after :func:`smooth_central`'s check. Where
    the check fails, the step is divided by ``STEP_SHRINK`` up to ``retries`` times (a kink at distance d > 2h no
    longer matters); then :class:`NonDifferentiablePoint` propagates.
    """
    f0 = evaluate(0.0)
    for attempt in range(retries + 1):
        try:
            return smooth_central(f0, *(evaluate(k * step) for k in OFFSETS), step, what, value_scale, input_scale)
        except NonDifferentiablePoint:
            if attempt == retries:
                raise
            step /= STEP_SHRINK
