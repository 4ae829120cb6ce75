"""Affine coupling, element-wise part: y = x · s + t with log s = g(h), fused with the per-sample log-det.

Two forms of the log-scale g (both used by the models):

- ``"sigmoid"`` (Glow; Kingma & Dhariwal 2018, code ``glow/model.py``): s = sigmoid(h + 2). The +2 makes a
  freshly zero-initialised network (h = 0) start at s = sigmoid(2) ≈ 0.88, close to the identity, and s < 1
  bounds the scale so training cannot blow up. log s = logsigmoid(h + 2), d log s / dh = 1 - s.
- ``"exp"`` (RealNVP; Dinh et al. 2017, eq. 7-8): s = exp(h); the model bounds h before it gets here
  (h = γ · tanh(·)). log s = h, d log s / dh = 1.

Arrays: ``x``, ``h``, ``t`` of one shape (N, ...), one floating dtype; the log-det is Σ over all axes but
the first of log s, shape (N,). Cost: O(N·M) for M elements per sample, one pass, memory-bound.
:func:`check` is the contract every implementation of the family (this twin, Numba, CUDA) checks first.
"""
from nflow.backend import get_array_module
from nflow.kernels.contract import require_float, require_like, require_ndim, require_per_sample

FAMILY = "affine coupling"

SIGMOID_SHIFT = 2.0  # sigmoid(h + 2): identity-like start for zero-initialised networks (Glow)
SCALE_FORMS = ("sigmoid", "exp")


def check(form, glogdet=None, **arrays):
    """The family's contract: ``form`` one of SCALE_FORMS; the arrays, passed by name (x or y first, then h, t,
    gradients), float32/float64 of one shape (N, ...); ``glogdet``, where given, one value per sample."""
    if form not in SCALE_FORMS:
        raise ValueError(f"{FAMILY} kernel: form must be one of {SCALE_FORMS}, got {form!r}")
    (first_name, first), *others = arrays.items()
    require_float(FAMILY, first_name, first)
    require_ndim(FAMILY, first_name, first, (2,), "(N, ...)")
    for name, a in others:
        require_like(FAMILY, name, a, first_name, first)
    if glogdet is not None:
        require_per_sample(FAMILY, "glogdet", glogdet, first_name, first)


def log_scale(h, form):
    """log s and d(log s)/dh, element-wise."""
    xp = get_array_module(h)
    if form == "exp":
        return h, xp.ones_like(h)
    u = h + h.dtype.type(SIGMOID_SHIFT)
    # logsigmoid(u) = min(u, 0) - log1p(exp(-|u|)): no overflow for any u.
    log_s = xp.minimum(u, 0) - xp.log1p(xp.exp(-xp.abs(u)))
    return log_s, 1 - xp.exp(log_s)


def _per_sample_sum(a):
    return a.reshape(a.shape[0], -1).sum(axis=1)


def forward(x, h, t, form):
    """y = x · s + t, logdet = Σ log s."""
    check(form, x=x, h=h, t=t)
    log_s, _ = log_scale(h, form)
    xp = get_array_module(x)
    return x * xp.exp(log_s) + t, _per_sample_sum(log_s)


def inverse(y, h, t, form):
    """x = (y - t) / s, logdet = -Σ log s."""
    check(form, y=y, h=h, t=t)
    log_s, _ = log_scale(h, form)
    xp = get_array_module(y)
    return (y - t) * xp.exp(-log_s), -_per_sample_sum(log_s)


def forward_backward(x, h, gy, glogdet, form):
    """Gradients of the forward map given gy = ∂L/∂y and glogdet = ∂L/∂logdet (N,):

    ∂L/∂x = gy · s,   ∂L/∂t = gy,   ∂L/∂h = (gy · x · s + glogdet) · d(log s)/dh.
    """
    check(form, glogdet, x=x, h=h, gy=gy)
    xp = get_array_module(x)
    log_s, dlog_s = log_scale(h, form)
    s = xp.exp(log_s)
    gl = glogdet.reshape((-1,) + (1,) * (x.ndim - 1))
    return gy * s, (gy * x * s + gl) * dlog_s, gy


def inverse_backward(y, h, t, gx, glogdet, form):
    """Gradients of the inverse map x = (y - t)/s, logdet = -Σ log s, given gx = ∂L/∂x and glogdet:

    ∂L/∂y = gx / s,   ∂L/∂t = -gx / s,   ∂L/∂h = -(gx · x + glogdet) · d(log s)/dh.
    """
    check(form, glogdet, y=y, h=h, t=t, gx=gx)
    xp = get_array_module(y)
    log_s, dlog_s = log_scale(h, form)
    r = xp.exp(-log_s)
    x = (y - t) * r
    gl = glogdet.reshape((-1,) + (1,) * (y.ndim - 1))
    gy = gx * r
    return gy, -(gx * x + gl) * dlog_s, -gy
