"""Base densities, log-probabilities summed over all axes but the batch (shape (N,)).

Standard Gaussian:  log N(z; 0, I)  = -½ Σ (z² + log 2π)                  (one fused kernel, family ``gaussian``)
Standard logistic:  log p(z)        = -Σ (softplus(z) + softplus(-z))     (NICE §3.4: heavier tails)

Glow's learned and conditional Gaussians are not densities here: they are flows that standardise their input
in front of the standard Gaussian (``split.py``), which gives the same log-likelihood.
"""
import math

import numpy as np

import nflow.functional as F
from nflow.ops.kernel_function import KernelFunction

LOG_2PI = math.log(2 * math.pi)
LOGISTIC_U_FLOOR = 1e-12


class StandardGaussianLogProb(KernelFunction):
    """z -> log N(z; 0, I) summed per sample, shape (N,): one fused kernel pass (family ``gaussian``). Keeps: z."""

    family = "gaussian"

    def forward(self, z):
        self.saved = z
        return self.kernel.standard_log_prob(z)

    def backward(self, glogp):
        return self.kernel.standard_log_prob_backward(self.saved, glogp)


def standard_gaussian_log_prob(z):
    return StandardGaussianLogProb()(z)


def standard_logistic_log_prob(z):
    return -F.sum_per_sample(F.softplus(z) + F.softplus(-z))


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
