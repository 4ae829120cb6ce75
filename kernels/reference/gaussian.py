"""The Gaussian log-density of the multi-scale prior, summed per sample (shape (N,)).

Diagonal Gaussian (Glow's split prior, with μ and log σ from a network of the kept half):

    log N(z; μ, σ²)[n] = -½ Σ_m (u² + 2 log σ + log 2π),     u = (z - μ) · exp(-log σ)
    ∂/∂z = -u · exp(-log σ) · g[n],   ∂/∂μ = u · exp(-log σ) · g[n],   ∂/∂log σ = (u² - 1) · g[n]

Standard Gaussian (μ = 0, log σ = 0; the prior every model puts on its latents):

    log N(z; 0, I)[n] = -½ Σ_m (z² + log 2π),      ∂/∂z = -z · g[n]

``g`` is ∂L/∂logp, shape (N,). z, μ, log σ share one shape (N, ...) and dtype (the graph node broadcasts them
first). Cost: one memory-bound pass each way.
"""
import math

from nflow.backend import get_array_module

LOG_2PI = math.log(2 * math.pi)


def _per_sample_sum(a):
    return a.reshape(a.shape[0], -1).sum(axis=1)


def _per_sample(g, ndim):
    return g.reshape((-1,) + (1,) * (ndim - 1))


def log_prob(z, mean, log_std):
    """-½ Σ (u² + 2 log σ + log 2π) per sample, u = (z - μ)·exp(-log σ)."""
    xp = get_array_module(z)
    u = (z - mean) * xp.exp(-log_std)
    return -0.5 * _per_sample_sum(u * u + 2.0 * log_std + LOG_2PI)


def log_prob_backward(z, mean, log_std, glogp):
    """(∂L/∂z, ∂L/∂μ, ∂L/∂log σ) given glogp = ∂L/∂logp (N,)."""
    xp = get_array_module(z)
    r = xp.exp(-log_std)
    u = (z - mean) * r
    g = _per_sample(glogp, z.ndim)
    gmean = u * r * g
    return -gmean, gmean, (u * u - 1) * g


def standard_log_prob(z):
    """-½ Σ (z² + log 2π) per sample."""
    return -0.5 * _per_sample_sum(z * z + LOG_2PI)


def standard_log_prob_backward(z, glogp):
    """∂L/∂z = -z · glogp[n]."""
    return -z * _per_sample(glogp, z.ndim)
