"""The standard Gaussian log-density, summed per sample (shape (N,)): the prior every model puts on its latents.

    log N(z; 0, I)[n] = -½ Σ_m (z² + log 2π),      ∂/∂z = -z · g[n]

``g`` is ∂L/∂logp, shape (N,). (Glow's learned, conditional Gaussians are standardising flows in front of this
prior, ``nflow/flows/split.py``: they need no density kernel of their own.) Cost: one memory-bound pass each way.
"""
import math


LOG_2PI = math.log(2 * math.pi)


def _per_sample_sum(a):
    return a.reshape(a.shape[0], -1).sum(axis=1)


def _per_sample(g, ndim):
    return g.reshape((-1,) + (1,) * (ndim - 1))


def standard_log_prob(z):
    """-½ Σ (z² + log 2π) per sample."""
    return -0.5 * _per_sample_sum(z * z + LOG_2PI)


def standard_log_prob_backward(z, glogp):
    """∂L/∂z = -z · glogp[n]."""
    return -z * _per_sample(glogp, z.ndim)
