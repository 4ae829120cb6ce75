"""ActNorm (Kingma & Dhariwal 2018, §3.1, Table 1): a per-channel affine map with a data-dependent start.

    y = (x + b) · exp(log_s),   log|det ∂y/∂x| = P · Σ_c log_s[c]   (P = pixels per channel, H·W)

The channel axis is 1; every other axis but the batch is a pixel axis, so (N, C) and (N, C, H, W) both work.
Cost: one memory-bound pass forward, one backward (plus per-channel reductions).
:func:`check` is the contract every implementation of the family (this twin, Numba, CUDA) checks first.
"""
from nflow.backend import get_array_module
from nflow.kernels.contract import require_float, require_like, require_ndim, require_per_sample

FAMILY = "actnorm"


def check(bias, log_s, glogdet=None, **arrays):
    """The family's contract: the arrays, passed by name (x or y first, then gradients), float32/float64 of one
    shape (N, C, ...); ``bias`` and ``log_s`` of shape (C,) and the same dtype; ``glogdet`` one value per sample."""
    (first_name, first), *others = arrays.items()
    require_float(FAMILY, first_name, first)
    require_ndim(FAMILY, first_name, first, (2,), "(N, C, ...)")
    for name, v in (("bias", bias), ("log_s", log_s)):
        require_like(FAMILY, name, v, first_name, first, shape=(first.shape[1],))
    for name, a in others:
        require_like(FAMILY, name, a, first_name, first)
    if glogdet is not None:
        require_per_sample(FAMILY, "glogdet", glogdet, first_name, first)


def _bcast(v, ndim):
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def _pixels(x):
    p = 1
    for n in x.shape[2:]:
        p *= n
    return p


def _channel_sum(a):
    axes = (0,) + tuple(range(2, a.ndim))
    return a.sum(axis=axes)


def forward(x, bias, log_s):
    check(bias, log_s, x=x)
    xp = get_array_module(x)
    y = (x + _bcast(bias, x.ndim)) * _bcast(xp.exp(log_s), x.ndim)
    logdet = xp.full((x.shape[0],), _pixels(x) * log_s.sum(), dtype=x.dtype)
    return y, logdet


def inverse(y, bias, log_s):
    check(bias, log_s, y=y)
    xp = get_array_module(y)
    x = y * _bcast(xp.exp(-log_s), y.ndim) - _bcast(bias, y.ndim)
    logdet = xp.full((y.shape[0],), -_pixels(y) * log_s.sum(), dtype=y.dtype)
    return x, logdet


def forward_backward(x, bias, log_s, gy, glogdet):
    """∂L/∂x = gy·s;  ∂L/∂b = Σ gy·s;  ∂L/∂log_s = Σ gy·(x + b)·s + P·Σ_n glogdet  (sums over batch and pixels)."""
    check(bias, log_s, glogdet, x=x, gy=gy)
    xp = get_array_module(x)
    s = _bcast(xp.exp(log_s), x.ndim)
    gx = gy * s
    gbias = _channel_sum(gx)
    glog_s = _channel_sum(gx * (x + _bcast(bias, x.ndim))) + _pixels(x) * glogdet.sum()
    return gx, gbias, glog_s


def inverse_backward(y, bias, log_s, gx, glogdet):
    """For x = y·exp(-log_s) - b:  ∂L/∂y = gx/s;  ∂L/∂b = -Σ gx;  ∂L/∂log_s = -Σ gx·y/s - P·Σ_n glogdet."""
    check(bias, log_s, glogdet, y=y, gx=gx)
    xp = get_array_module(y)
    r = _bcast(xp.exp(-log_s), y.ndim)
    gy = gx * r
    gbias = -_channel_sum(gx)
    glog_s = -_channel_sum(gy * y) - _pixels(y) * glogdet.sum()
    return gy, gbias, glog_s
