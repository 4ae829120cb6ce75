"""Base densities, log-probabilities summed over all axes but the batch (shape (N,)).

Standard Gaussian:  log N(z; 0, I)  = -½ Σ (z² + log 2π)
Standard logistic:  log p(z)        = -Σ (softplus(z) + softplus(-z))     (NICE §3.4: heavier tails)
Diagonal Gaussian:  log N(z; μ, σ²) = -½ Σ (((z - μ) / σ)² + 2 log σ + log 2π)
"""
import math

import numpy as np

import nflow.functional as F
from nflow.flows import functions

LOG_2PI = math.log(2 * math.pi)
LOGISTIC_U_FLOOR = 1e-12


def _per_sample(a):
    return F.sum(F.reshape(a, (a.shape[0], -1)), axis=1)


def standard_gaussian_log_prob(z):
    # one fused kernel (kernels/*/gaussian.py): -½ Σ (z² + log 2π) per sample
    return functions.standard_gaussian_log_prob(z)


def standard_logistic_log_prob(z):
    return -_per_sample(F.softplus(z) + F.softplus(-z))


def gaussian_log_prob(z, mean, log_std):
    # one fused kernel (kernels/*/gaussian.py): -½ Σ (u² + 2 log σ + log 2π), u = (z - μ)·exp(-log σ)
    return functions.gaussian_log_prob(z, mean, log_std)


PRIORS = {"gaussian": standard_gaussian_log_prob, "logistic": standard_logistic_log_prob}


def sample_prior(name, shape, rng, temperature=1.0):
    """Draw from a standard prior on the host (NumPy), scaled by ``temperature`` (Glow §5: T < 1 sharpens)."""
    if name == "gaussian":
        return rng.standard_normal(shape) * temperature
    if name == "logistic":
        u = rng.uniform(0.0, 1.0, size=shape)
        u = np.clip(u, LOGISTIC_U_FLOOR, 1 - LOGISTIC_U_FLOOR)  # keep log(u) and log(1-u) finite
        return (np.log(u) - np.log1p(-u)) * temperature  # inverse CDF of the logistic
    raise ValueError(f"unknown prior {name!r}; choose one of {sorted(PRIORS)}")
