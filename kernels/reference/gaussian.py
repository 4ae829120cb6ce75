"""The standard Gaussian log-density, summed per sample (shape (N,)): the prior every model puts on its latents.

    log N(z; 0, I)[n] = -½ Σ_m (z² + log 2π),      ∂/∂z = -z · g[n]

``g`` is ∂L/∂logp, shape (N,); :func:`check` is the contract every implementation checks first. (Glow's
learned, conditional Gaussians are standardising flows in front of this prior, ``nflow/flows/split.py``: they
need no density kernel of their own.) Cost: one memory-bound pass each way.
"""
import math

from nflow.kernels.contract import require_float, require_ndim, require_per_sample

FAMILY = "gaussian"
LOG_2PI = math.log(2 * math.pi)


def check(z, glogp=None):
    """z: float32/float64 of shape (N, ...); glogp, where given, one value per sample."""
    require_float(FAMILY, "z", z)
    require_ndim(FAMILY, "z", z, (1,), "(N, ...)")
    if glogp is not None:
        require_per_sample(FAMILY, "glogp", glogp, "z", z)


def _per_sample_sum(a):
    return a.reshape(a.shape[0], -1).sum(axis=1)


def _per_sample(g, ndim):
    return g.reshape((-1,) + (1,) * (ndim - 1))


def standard_log_prob(z):
    """-½ Σ (z² + log 2π) per sample."""
    check(z)
    return -0.5 * _per_sample_sum(z * z + LOG_2PI)


def standard_log_prob_backward(z, glogp):
    """∂L/∂z = -z · glogp[n]."""
    check(z, glogp)
    return -z * _per_sample(glogp, z.ndim)
