"""Glow's multi-scale factor-out with a learned conditional prior, written as a bijection.

Glow (Kingma & Dhariwal 2018; code ``split2d``) splits z into (z₁, z₂), keeps z₁ flowing and scores z₂ under
N(μ(z₁), σ(z₁)²), where μ and log σ come from a zero-initialised convolution of z₁. The same density is
obtained by standardising z₂ — ε₂ = (z₂ - μ(z₁)) · exp(-log σ(z₁)) — and scoring ε₂ under N(0, I):

    log N(z₂; μ, σ²) = log N(ε₂; 0, I) - Σ log σ

So :class:`Split` is a flow x = [z₁, z₂] -> y = [z₁, ε₂] (same shape) with log-det -Σ log σ(z₁); the model
hands y[:, C/2:] to the standard-Gaussian prior and y[:, :C/2] to the next level. Its inverse,
z₂ = μ(z₁) + σ(z₁) · ε₂, is how sampling at temperature T works: ε₂ ~ N(0, T²), and T = 0 gives z₂ = μ(z₁),
the conditional prior's mean.

:class:`LearnedGaussianPrior` is the same with μ, log σ free per-position parameters (Glow's learned top prior).
"""
import numpy as np

import nflow.functional as F
from nflow.flows.base import Flow, check_input, zero_logdet
from nflow.flows.functions import affine_coupling_forward, affine_coupling_inverse
from nflow.flows.nets import ZeroConv2d
from nflow.nn import init
from nflow.nn.module import Parameter, new_array


# (z₂ - μ)·exp(-log σ) with log-det -Σ log σ is the affine coupling's inverse map in its "exp" form (log-scale
# h = log σ, shift t = μ), and its inverse the forward map: one fused kernel each way, backward included.
def _standardise(z2, mean, log_std):
    return affine_coupling_inverse(z2, log_std, mean, "exp")


def _unstandardise(eps, mean, log_std):
    return affine_coupling_forward(eps, log_std, mean, "exp")


class Split(Flow):
    """[z₁, z₂] -> [z₁, (z₂ - μ(z₁))·exp(-log σ(z₁))]; z₁ is the first ``channels // 2`` channels."""

    def __init__(self, channels, dtype=np.float32):
        super().__init__()
        if channels < 2 or channels % 2:
            raise ValueError(f"Split: needs an even number of channels (≥ 2) to factor out half, got {channels}")
        self.channels = channels
        self.prior_net = ZeroConv2d(channels // 2, channels, dtype=dtype)  # -> (μ, log σ) for z₂

    def _parts(self, x, where):
        check_input(x, where, expected_ndim=4, channels=self.channels)
        z1, z2 = F.split(x, 2, axis=1)
        mean, log_std = F.split(self.prior_net(z1), 2, axis=1)
        return z1, z2, mean, log_std

    def forward(self, x):
        z1, z2, mean, log_std = self._parts(x, "Split")
        eps, logdet = _standardise(z2, mean, log_std)
        return F.concat([z1, eps], axis=1), logdet

    def inverse(self, y):
        z1, eps, mean, log_std = self._parts(y, "Split.inverse")
        z2, logdet = _unstandardise(eps, mean, log_std)
        return F.concat([z1, z2], axis=1), logdet


class LearnedGaussianPrior(Flow):
    """z -> (z - μ)·exp(-log σ) with μ, log σ learned per position, zero at the start (Glow's ``learntop``)."""

    def __init__(self, shape, dtype=np.float32):
        super().__init__()
        self.shape = tuple(shape)
        self.mean = Parameter(new_array(init.zeros(self.shape, dtype)))
        self.log_std = Parameter(new_array(init.zeros(self.shape, dtype)))

    def _check(self, x, where):
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"{where}: expected input of shape (N, {', '.join(map(str, self.shape))}), got {x.shape}")

    def _params(self):
        mean = F.reshape(self.mean, (1,) + self.shape)
        log_std = F.reshape(self.log_std, (1,) + self.shape)
        return mean, log_std

    def forward(self, x):
        self._check(x, "LearnedGaussianPrior")
        mean, log_std = self._params()
        eps = (x - mean) * F.exp(-log_std)
        return eps, zero_logdet(x) - F.sum(self.log_std)

    def inverse(self, y):
        self._check(y, "LearnedGaussianPrior.inverse")
        mean, log_std = self._params()
        return y * F.exp(log_std) + mean, zero_logdet(y) + F.sum(self.log_std)
