"""The properties a flow layer must have, one function each. Each raises :class:`PropertyFailure` (an
AssertionError) whose message names the property, the layer, where it failed, the error and the tolerance, and
the example; the central-difference ones (2 and 4) may raise
:class:`~nflow.finite_differences.NonDifferentiablePoint` instead, which is not a failure (``check.py`` moves the
point).

0. the contract: forward and inverse return (y, logdet) Tensors of the input's dtype, logdet of shape (N,),
   D coordinates per sample, all finite;
1. inverse(forward(x)) = x and forward(inverse(y)) = y;
2. logdet[n] = log|det J_n| of sample n's own Jacobian by central differences (any sign of det J), and moving one
   sample moves no other sample's output or log-det;
3. the inverse's log-det is minus the forward's at the matching point;
4. gradients of L = Σ a·y + Σ b·logdet (random a, b) with respect to the input and every parameter equal central
   differences along random directions, forward and inverse;
5. the backends (NumPy twins, Numba, CuPy) agree on outputs, log-dets and gradients;
6. ``backward_from_output`` (memory-free backprop) gives the stored path's gradients and rebuilds the input.

Tolerances and the reasons for them are in ``tolerances.py`` (the central difference's own in
:mod:`nflow.finite_differences`).
"""
import numpy as np

from nflow.backend import to_numpy
from nflow.finite_differences import FD_STEP, ROUND_ULPS, rounding_floor
from nflow.testing.evaluate import call, flat_outputs, outputs, reversible_gradients, stored_gradients
from nflow.testing.jacobian import directional_derivative, per_sample_jacobian, snap, snap_direction
from nflow.testing.tolerances import (EPS, GRAD32_RTOL, GRAD_RTOL, LOGDET_ATOL, REVERSIBLE_FACTOR, SEPARATION_STEP,
                                      SEPARATION_ULPS, agree_rtol, logdet_sum_bound, round_trip_rtol)
from nflow.tensor import Tensor

TITLES = {
    0: "property 0 (the contract: forward and inverse return (y, logdet), logdet of shape (N,), finite)",
    1: "property 1 (round trip: inverse(forward(x)) = x and forward(inverse(y)) = y)",
    2: "property 2 (log-det = log|det J| of each sample's own Jacobian)",
    3: "property 3 (inverse log-det = -forward log-det at the matching point)",
    4: "property 4 (gradients = central differences)",
    5: "property 5 (backends agree)",
    6: "property 6 (backward_from_output gives the stored path's gradients)",
}
N_INPUT_DIRECTIONS = 3   # random unit directions in the whole batch's input, per map (forward, inverse)
N_PARAM_DIRECTIONS = 2   # random unit directions in all parameters at once, per map
LOGDET64 = np.dtype(np.float64)


class PropertyFailure(AssertionError):
    """A property does not hold; ``number`` is the property (0-6), the message says everything else."""

    def __init__(self, number, layer, where, found, example, error=None, tolerance=None):
        self.number = number
        lines = [f"check_flow: {TITLES[number]} failed", f"  layer:     {layer}", f"  where:     {where}",
                 f"  found:     {found}"]
        if error is not None:
            lines.append(f"  error:     {error:.4g} > tolerance {tolerance:.4g}")
        lines.append(f"  example:   {example}")
        super().__init__("\n".join(lines))


class Example:
    """One drawn input batch ``x`` (in the dtype under test), the seed of the random directions and cotangents,
    and how to describe it in a message."""

    def __init__(self, x, seed, text):
        self.x, self.seed, self.text = x, seed, text

    def __repr__(self):
        return f"Example(x of shape {self.x.shape}, seed {self.seed})"

    def moved(self, x, why):
        return Example(x, self.seed, f"{self.text}\n             moved to {_array_text(x)} because {why}")


def _array_text(x):
    return np.array2string(np.asarray(x), precision=6, threshold=64, separator=", ").replace("\n", "\n" + " " * 13)


def _fail(ctx, ex, number, where, found, error=None, tolerance=None):
    example = ex.text + f"\n             seed {ex.seed} (random directions and cotangents)"
    perturbation = getattr(ctx, "perturbation", None)
    if perturbation:
        example += f"\n  perturbed: {perturbation}"
    raise PropertyFailure(number, ctx.subject.name, where, found, example, error, tolerance)


def _scale(*arrays):
    """max |a| over the arrays, as a float64 (1 where they are all zero, so a zero error still passes)."""
    m = max((float(np.max(np.abs(np.asarray(a, dtype=np.float64)))) for a in arrays if np.size(a)), default=0.0)
    return m if m > 0 else 1.0


def _worst(got, want):
    """(max |got - want|, index of the worst entry) in float64."""
    diff = np.abs(np.asarray(got, dtype=np.float64) - np.asarray(want, dtype=np.float64))
    index = np.unravel_index(int(np.argmax(diff)), diff.shape) if diff.size else ()
    return (float(diff[index]) if diff.size else 0.0), tuple(int(i) for i in index)


def _where(backend, dtype, direction=None):
    text = f"backend {backend!r}, {np.dtype(dtype).name}"
    return text if direction is None else f"{text}, {direction}"


# ------------------------------------------------------------------------------------------------ 0. contract
def _check_pair(ctx, ex, result, direction, n, backend, input_dtype):
    where = _where(backend, input_dtype, direction)
    if not (isinstance(result, (tuple, list)) and len(result) == 2
            and all(isinstance(t, Tensor) for t in result)):
        _fail(ctx, ex, 0, where, f"{direction} returned {type(result).__name__} {_short(result)}; a flow returns "
              "(y, logdet), two nflow Tensors")
    y, logdet = result
    if y.shape[0] != n or y.size != n * ctx.subject.dim:
        _fail(ctx, ex, 0, where, f"{direction} maps a batch of {n} x {ctx.subject.input_shape} to y of shape "
              f"{y.shape}; a bijection keeps the batch and D = {ctx.subject.dim} coordinates per sample")
    if logdet.shape != (n,):
        _fail(ctx, ex, 0, where, f"{direction}'s logdet has shape {logdet.shape}; it must be ({n},), one per sample")
    if y.dtype != input_dtype or logdet.dtype != input_dtype:
        _fail(ctx, ex, 0, where, f"{direction} returned y {y.dtype}, logdet {logdet.dtype} for a {input_dtype} input")
    y_host, ld_host = np.asarray(_host(y)), np.asarray(_host(logdet))
    if not (np.isfinite(y_host).all() and np.isfinite(ld_host).all()):
        _fail(ctx, ex, 0, where, f"{direction} returned non-finite values ({int((~np.isfinite(y_host)).sum())} in y, "
              f"{int((~np.isfinite(ld_host)).sum())} in logdet); is [low, high] inside the layer's domain?")
    return y_host, ld_host


def _host(t):
    return to_numpy(t.data)


def _num(value):
    return f"{float(value):.10g}"


def _short(value):
    text = repr(value)
    return text if len(text) < 80 else text[:77] + "..."


def contract(ctx, ex, backend):
    layer, n = ctx.subject.on(backend), ex.x.shape[0]
    y, _ = _check_pair(ctx, ex, call(layer, "forward", ex.x, backend), "forward", n, backend, ex.x.dtype)
    x_back, _ = _check_pair(ctx, ex, call(layer, "inverse", y, backend), "inverse", n, backend, ex.x.dtype)
    if x_back.shape != ex.x.shape:
        _fail(ctx, ex, 0, _where(backend, ex.x.dtype, "inverse"),
              f"inverse(forward(x)) has shape {x_back.shape}, x has shape {ex.x.shape}")


# ------------------------------------------------------------------------------------------------ 1. round trip
def round_trip(ctx, ex, backend):
    layer, x = ctx.subject.on(backend), ex.x
    y, _ = outputs(layer, "forward", x, backend)
    x_back, _ = outputs(layer, "inverse", y, backend)
    y_again, _ = outputs(layer, "forward", x_back, backend)
    scale = _scale(x, y)
    rtol = round_trip_rtol(x.dtype, ctx.subject.depth)
    for got, want, what in ((x_back, x, "inverse(forward(x)) differs from x"),
                            (y_again, y, "forward(inverse(y)) differs from y = forward(x)")):
        err, at = _worst(got, want)
        if err > rtol * scale:
            _fail(ctx, ex, 1, _where(backend, x.dtype), f"{what}: worst at index {at}: {_num(got[at])} instead of "
                  f"{_num(want[at])} (relative to the scale max(|x|, |y|) = {scale:.4g})", err / scale, rtol)


# ------------------------------------------------------------------------------------------------ 3. inverse log-det
def inverse_logdet(ctx, ex, backend):
    layer, x = ctx.subject.on(backend), ex.x
    y, ld_forward = outputs(layer, "forward", x, backend)
    _, ld_inverse = outputs(layer, "inverse", y, backend)
    rtol = round_trip_rtol(x.dtype, ctx.subject.depth)
    total = np.abs(ld_forward.astype(np.float64) + ld_inverse.astype(np.float64))
    bound = logdet_sum_bound(rtol, ctx.subject.dim, ld_forward.astype(np.float64))
    n = int(np.argmax(total - bound))
    if total[n] > bound[n]:
        _fail(ctx, ex, 3, _where(backend, x.dtype), f"sample {n}: forward log-det {_num(ld_forward[n])} at x, inverse "
              f"log-det {_num(ld_inverse[n])} at y = forward(x); their sum should be 0",
              float(total[n]), float(bound[n]))


# ------------------------------------------------------------------------------------------------ 2. log-det
def _y_map(layer, backend):
    def fn(batch):
        y, _ = outputs(layer, "forward", batch, backend)
        return y.reshape(len(batch), -1).astype(np.float64)
    return fn


def separation(ctx, ex):
    """Move one sample at a time (a finite step along a random direction); no other sample may move."""
    twin, backend, x = ctx.subject.twin, ctx.host, ex.x.astype(np.float64)
    n_samples = x.shape[0]
    if n_samples < 2:
        return
    rng = np.random.default_rng(ex.seed + 1)
    y, ld = outputs(twin, "forward", x, backend)
    u = EPS[LOGDET64]
    y_tol = SEPARATION_ULPS * u * _scale(y)
    ld_tol = SEPARATION_ULPS * u * (ctx.subject.dim + float(np.max(np.abs(ld))))
    for n in range(n_samples):
        moved = x.copy()
        step = SEPARATION_STEP * (ctx.high - ctx.low) * rng.uniform(-1, 1, size=x.shape[1:])
        moved[n] = np.clip(moved[n] + step, ctx.low, ctx.high)
        y2, ld2 = outputs(twin, "forward", moved, backend)
        for m in range(n_samples):
            if m == n:
                continue
            dy, at = _worst(y2[m], y[m])
            if dy > y_tol:
                _fail(ctx, ex, 2, _where(backend, np.float64, "forward"), f"moving sample {n} alone moved sample "
                      f"{m}'s output (at {at}, by {dy:.3g}): the layer mixes the samples of a batch", dy, y_tol)
            dld = abs(float(ld2[m]) - float(ld[m]))
            if dld > ld_tol:
                _fail(ctx, ex, 2, _where(backend, np.float64, "forward"), f"moving sample {n} alone moved sample "
                      f"{m}'s log-det from {_num(ld[m])} to {_num(ld2[m])}: the log-det mixes the samples of a batch",
                      dld, ld_tol)


def logdet_of_sample(ctx, ex, x64, n, y_n, ld_n):
    """Sample n's log-det against log|det J_n|, J_n by central differences (the float64 twin)."""
    twin, backend, d = ctx.subject.twin, ctx.host, ctx.subject.dim
    jac = per_sample_jacobian(_y_map(twin, backend), x64[n], what=f"the Jacobian of sample {n}")
    sign, logabs = np.linalg.slogdet(jac)
    where = _where(backend, np.float64, "forward")
    if sign == 0 or not np.isfinite(logabs):
        _fail(ctx, ex, 2, where, f"sample {n}: the Jacobian by central differences is singular: the layer is not a "
              "bijection here")
    smallest = float(np.linalg.svd(jac, compute_uv=False)[-1])
    delta = ROUND_ULPS * EPS[LOGDET64] * _scale(y_n) / FD_STEP
    tol = LOGDET_ATOL + d * delta / smallest
    err = abs(float(ld_n) - float(logabs))
    if err > tol:
        _fail(ctx, ex, 2, where, f"sample {n}: the layer's log-det is {_num(ld_n)}, log|det J| = {_num(logabs)} "
              f"(det J {'< 0' if sign < 0 else '> 0'}; J {d}x{d} by central differences, step 2^-20)", err, tol)


def logdet_jacobian(ctx, ex):
    separation(ctx, ex)
    twin, backend = ctx.subject.twin, ctx.host
    x64 = ex.x.astype(np.float64)
    y, ld = outputs(twin, "forward", x64, backend)
    if ctx.subject.dim <= ctx.max_jacobian_dim:
        for n in range(x64.shape[0]):
            logdet_of_sample(ctx, ex, x64, n, y[n], ld[n])
    if ctx.subject.dtype != np.float64:  # the layer's own float32 log-det against its float64 twin's
        _, ld32 = outputs(ctx.subject.layer, "forward", ex.x, backend)
        rtol = agree_rtol(ex.x.dtype, ctx.subject.depth)
        err = np.abs(ld32.astype(np.float64) - ld)
        bound = logdet_sum_bound(rtol, ctx.subject.dim, ld)
        n = int(np.argmax(err - bound))
        if err[n] > bound[n]:
            _fail(ctx, ex, 2, _where(backend, ex.x.dtype, "forward"), f"sample {n}: the float32 layer's log-det "
                  f"{_num(ld32[n])}, its float64 twin's (checked against the Jacobian) {_num(ld[n])}",
                  float(err[n]), float(bound[n]))


# ------------------------------------------------------------------------------------------------ 4. gradients
def _unit(rng, shapes):
    """Random directions, jointly of unit norm, snapped so that steps along them are exact."""
    vs = [rng.standard_normal(s) for s in shapes]
    norm = np.sqrt(sum(float((v * v).sum()) for v in vs))
    return [snap_direction(v / norm) for v in vs]


def _with_params(params, originals, directions, t, fn):
    try:
        for p, p0, v in zip(params, originals, directions):
            p.data = p0 + np.asarray(t * v, dtype=p0.dtype)
        return fn()
    finally:
        for p, p0 in zip(params, originals):
            p.data = p0


def _compare_directional(weights, f0, central, analytic):
    """(error, tolerance) of an analytic directional derivative of L = Σ weights·f against the central one."""
    numeric = float((weights * central).sum())
    contributions = float(np.abs(weights * central).sum())
    tol = GRAD_RTOL * contributions + rounding_floor(float(np.abs(weights * f0).sum()))
    return abs(analytic - numeric), tol, numeric


def gradients(ctx, ex):
    twin, backend = ctx.subject.twin, ctx.host
    names = [name for name, _ in ctx.subject.twin_params]
    params = [p for _, p in ctx.subject.twin_params]
    rng = np.random.default_rng(ex.seed + 2)
    x64 = ex.x.astype(np.float64)
    for direction in ("forward", "inverse"):
        base = x64 if direction == "forward" else snap(outputs(twin, "forward", x64, backend)[0])
        fn = flat_outputs(twin, direction, backend)
        f0 = fn(base)
        weights = rng.standard_normal(f0.shape)
        n = base.shape[0]
        out_shape = outputs(twin, direction, base, backend)[0].shape
        gy, glogdet = weights[:, :-1].reshape(out_shape), weights[:, -1].copy()
        gx, gps = stored_gradients(twin, direction, base, gy, glogdet, backend, params)
        where = _where(backend, np.float64, direction)
        for k in range(N_INPUT_DIRECTIONS):
            (v,) = _unit(rng, [base.shape])
            central = directional_derivative(lambda t: fn(base + t * v), what=f"{direction}, input direction {k}",
                                             input_scale=_scale(base))
            err, tol, numeric = _compare_directional(weights, f0, central, float((gx * v).sum()))
            if err > tol:
                _fail(ctx, ex, 4, where, f"gradient with respect to the input along random direction {k}: analytic "
                      f"{_num((gx * v).sum())}, central difference {_num(numeric)} (L = Σ a·y + Σ b·logdet, "
                      f"batch of {n})", err, tol)
        if not params:
            continue
        originals = [p.data for p in params]
        for k in range(N_PARAM_DIRECTIONS):
            vs = _unit(rng, [p.shape for p in params])
            central = directional_derivative(lambda t: _with_params(params, originals, vs, t, lambda: fn(base)),
                                             what=f"{direction}, parameter direction {k}",
                                             input_scale=_scale(*originals))
            analytic = sum(float((g.astype(np.float64) * v).sum()) for g, v in zip(gps, vs))
            err, tol, numeric = _compare_directional(weights, f0, central, analytic)
            if err > tol:
                culprits = _which_parameters(params, names, originals, gps, weights, f0, fn, base, rng, direction)
                _fail(ctx, ex, 4, where, f"gradient with respect to the parameters along a random direction in all "
                      f"{len(params)} of them: analytic {_num(analytic)}, central difference {_num(numeric)}; wrong for: "
                      f"{culprits}", err, tol)
        if ctx.subject.dtype != np.float64:
            _float32_gradients(ctx, ex, direction, base, gy, glogdet, gx, gps)


def _which_parameters(params, names, originals, gps, weights, f0, fn, base, rng, direction):
    """Names of the parameters whose own gradient disagrees with central differences (for the message)."""
    wrong = []
    for i, (p, name) in enumerate(zip(params, names)):
        (v,) = _unit(rng, [p.shape])
        vs = [np.zeros(q.shape) for q in params]
        vs[i] = v
        try:
            central = directional_derivative(lambda t: _with_params(params, originals, vs, t, lambda: fn(base)),
                                             what=f"{direction}, parameter {name}")
        except Exception:
            continue
        err, tol, _ = _compare_directional(weights, f0, central, float((gps[i].astype(np.float64) * v).sum()))
        if err > tol:
            wrong.append(name)
    return ", ".join(wrong) if wrong else "(no single parameter: the error shows only in a joint direction)"


def _float32_gradients(ctx, ex, direction, base64, gy, glogdet, gx64, gps64):
    """The float32 layer's own gradients against its float64 twin's (which central differences checked)."""
    layer, backend, dtype = ctx.subject.layer, ctx.host, ctx.subject.dtype
    base = ex.x if direction == "forward" else outputs(layer, "forward", ex.x, backend)[0]
    params = [p for _, p in ctx.subject.params]
    gx, gps = stored_gradients(layer, direction, base, gy.astype(dtype), glogdet.astype(dtype), backend, params)
    names = ["the input"] + [name for name, _ in ctx.subject.params]
    tol = GRAD32_RTOL * _scale(gx64, *gps64)
    for name, got, want in zip(names, [gx] + gps, [gx64] + gps64):
        err, at = _worst(got, want)
        if err > tol:
            _fail(ctx, ex, 4, _where(backend, dtype, direction), f"float32 gradient with respect to {name} at {at}: "
                  f"{_num(got[at])}, the float64 twin's (checked by central differences) {_num(want[at])}", err, tol)


# ------------------------------------------------------------------------------------------------ 5. backends
def backends_agree(ctx, ex):
    reference, x, dtype = ctx.reference, ex.x, ex.x.dtype
    ref_layer = ctx.subject.on(reference)
    rtol = agree_rtol(dtype, ctx.subject.depth)
    rng = np.random.default_rng(ex.seed + 4)
    y_ref, ld_ref = outputs(ref_layer, "forward", x, reference)
    xi_ref, ldi_ref = outputs(ref_layer, "inverse", y_ref, reference)
    gy = rng.standard_normal(y_ref.shape).astype(dtype)
    glogdet = rng.standard_normal(ld_ref.shape).astype(dtype)
    g_ref = stored_gradients(ref_layer, "forward", x, gy, glogdet, reference, ctx.subject.params_on(reference))
    for backend in ctx.backends[1:]:
        layer = ctx.subject.on(backend)
        y, ld = outputs(layer, "forward", x, backend)
        xi, ldi = outputs(layer, "inverse", y_ref, backend)
        gx, gps = stored_gradients(layer, "forward", x, gy, glogdet, backend, ctx.subject.params_on(backend))
        names = ["forward y", "inverse x"] + ["gradient w.r.t. the input"] + [
            f"gradient w.r.t. {name}" for name, _ in ctx.subject.params]
        value_scale, grad_scale = _scale(x, y_ref), _scale(*([g_ref[0]] + g_ref[1]))
        for i, (name, got, want) in enumerate(zip(names, [y, xi, gx] + gps, [y_ref, xi_ref, g_ref[0]] + g_ref[1])):
            err, at = _worst(got, want)
            scale = value_scale if i < 2 else grad_scale
            if err > rtol * scale:
                _fail(ctx, ex, 5, f"{backend!r} against {reference!r}, {np.dtype(dtype).name}",
                      f"{name} at {at}: {_num(got[at])} on {backend}, {_num(want[at])} on {reference} (relative to "
                      f"the scale {scale:.4g} of the {'values' if i < 2 else 'gradients'})", err / scale, rtol)
        for name, got, want in (("forward log-det", ld, ld_ref), ("inverse log-det", ldi, ldi_ref)):
            err = np.abs(got.astype(np.float64) - want)
            bound = logdet_sum_bound(rtol, ctx.subject.dim, want.astype(np.float64))
            n = int(np.argmax(err - bound))
            if err[n] > bound[n]:
                _fail(ctx, ex, 5, f"{backend!r} against {reference!r}, {np.dtype(dtype).name}",
                      f"{name} of sample {n}: {_num(got[n])} on {backend}, {_num(want[n])} on {reference}",
                      float(err[n]), float(bound[n]))


# ------------------------------------------------------------------------------------------------ 6. memory-free
def reversible(ctx, ex, backend):
    layer, x, dtype = ctx.subject.on(backend), ex.x, ex.x.dtype
    params = ctx.subject.params_on(backend)
    rng = np.random.default_rng(ex.seed + 3)
    y, _ = outputs(layer, "forward", x, backend)
    gy = rng.standard_normal(y.shape).astype(dtype)
    glogdet = rng.standard_normal(x.shape[0]).astype(dtype)
    gx, gps = stored_gradients(layer, "forward", x, gy, glogdet, backend, params)
    x_rebuilt, gx_r, gps_r = reversible_gradients(layer, y, gy, glogdet, backend, params)
    where = _where(backend, dtype, "backward_from_output")
    rtol = round_trip_rtol(dtype, ctx.subject.depth)
    scale = _scale(x, y)
    if x_rebuilt.shape != x.shape:
        _fail(ctx, ex, 6, where, f"the rebuilt input has shape {x_rebuilt.shape}, x has {x.shape}")
    err, at = _worst(x_rebuilt, x)
    if err > rtol * scale:
        _fail(ctx, ex, 6, where, f"the rebuilt input differs from x at {at}: {_num(x_rebuilt[at])} instead of {_num(x[at])}",
              err / scale, rtol)
    tol = REVERSIBLE_FACTOR * rtol
    names = ["the input"] + [name for name, _ in ctx.subject.params]
    grad_scale = _scale(gx, *gps)
    for name, got, want in zip(names, [gx_r] + gps_r, [gx] + gps):
        err, at = _worst(got, want)
        if err > tol * grad_scale:
            _fail(ctx, ex, 6, where, f"gradient with respect to {name} at {at}: {_num(got[at])} by "
                  f"backward_from_output, {_num(want[at])} by the stored path (relative to the largest gradient, "
                  f"{grad_scale:.4g})", err / grad_scale, tol)
