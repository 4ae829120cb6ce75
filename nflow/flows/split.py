"""Multi-scale factor-out (RealNVP §3.6, Glow §3) and Glow's learned priors, written as flows.

**Split** marks where half of the channels leave the flow as a latent: :class:`~nflow.models.FlowModel`'s walk
calls :meth:`Split.factor_out` on this layer's output and hands the second half to the prior. With a learned
prior (Glow; Kingma & Dhariwal 2018, code ``split2d``), the factored-out half z₂ is scored under N(μ(z₁), σ(z₁)²),
where μ and log σ come from a zero-initialised convolution of the kept half z₁. The same density is obtained by
*standardising* z₂ — ε₂ = (z₂ - μ(z₁)) · exp(-log σ(z₁)) — and scoring ε₂ under N(0, I):

    log N(z₂; μ, σ²) = log N(ε₂; 0, I) - Σ log σ

So the layer is the flow x = [z₁, z₂] -> y = [z₁, ε₂] (same shape) with log-det -Σ log σ(z₁), and the latent
that leaves is ε₂. Its inverse, z₂ = μ(z₁) + σ(z₁) · ε₂, is how sampling at temperature T works: ε₂ ~ N(0, T²),
and T = 0 gives z₂ = μ(z₁), the conditional prior's mean. Without a learned prior (RealNVP) the map is the
identity and z₂ itself leaves.

**LearnedStandardise** is Glow's learned top prior (``learntop``) in the same form: z -> (z - μ)·exp(-log σ)
with μ, log σ free per-position parameters, in front of the standard Gaussian.
"""
import numpy as np

import nflow.functional as F
from nflow.flows.affine_coupling import affine_coupling_forward, affine_coupling_inverse
from nflow.flows.base import Flow, check_input, zero_logdet
from nflow.flows.nets import ZeroConv2d
from nflow.nn import init
from nflow.nn.module import Parameter, new_array

HALVES = 2  # a split keeps the first half of the channels flowing and factors out the second


# (z₂ - μ)·exp(-log σ) with log-det -Σ log σ is the affine coupling's inverse map in its "exp" form (log-scale
# h = log σ, shift t = μ), and its inverse the forward map: one fused kernel each way, backward included.
def _standardise(z2, mean, log_std):
    return affine_coupling_inverse(z2, log_std, mean, "exp")


def _unstandardise(eps, mean, log_std):
    return affine_coupling_forward(eps, log_std, mean, "exp")


class Split(Flow):
    """Factor out the second half of the channels; with ``learned_prior`` (Glow) standardise it first,
    [z₁, z₂] -> [z₁, (z₂ - μ(z₁))·exp(-log σ(z₁))]. z₁ is the first ``channels // 2`` channels."""

    factors_out = True

    def __init__(self, channels, learned_prior=True, dtype=np.float32):
        super().__init__()
        if channels < HALVES or channels % HALVES:
            raise ValueError(f"Split: needs an even number of channels (≥ 2) to factor out half, got {channels}")
        self.channels = channels
        self.learned_prior = learned_prior
        if learned_prior:
            self.prior_net = ZeroConv2d(channels // HALVES, channels, dtype=dtype)  # -> (μ, log σ) for z₂

    def _parts(self, x, where):
        check_input(x, where, expected_ndim=4, channels=self.channels)
        z1, z2 = F.split(x, HALVES, axis=1)
        mean, log_std = F.split(self.prior_net(z1), 2, axis=1)  # first half μ, second half log σ (Glow's code)
        return z1, z2, mean, log_std

    def forward(self, x):
        if not self.learned_prior:
            check_input(x, "Split", channels=self.channels)
            return x, zero_logdet(x)
        z1, z2, mean, log_std = self._parts(x, "Split")
        eps, logdet = _standardise(z2, mean, log_std)
        return F.concat([z1, eps], axis=1), logdet

    def inverse(self, y):
        if not self.learned_prior:
            check_input(y, "Split.inverse", channels=self.channels)
            return y, zero_logdet(y)
        z1, eps, mean, log_std = self._parts(y, "Split.inverse")
        z2, logdet = _unstandardise(eps, mean, log_std)
        return F.concat([z1, z2], axis=1), logdet

    def factor_out(self, y):
        """This layer's output -> (the half that flows on, the latent that leaves)."""
        kept, latent = F.split(y, HALVES, axis=1)
        return kept, latent

    def factor_in(self, kept, latent):
        """The inverse of :meth:`factor_out`: the layer's output again."""
        return F.concat([kept, latent], axis=1)


class LearnedStandardise(Flow):
    """z -> (z - μ)·exp(-log σ) with μ, log σ learned per position, zero at the start (Glow's ``learntop``).

    log-det -Σ log σ; followed by the standard Gaussian, this is the density N(z; μ, σ²)."""

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
        self._check(x, "LearnedStandardise")
        mean, log_std = self._params()
        eps = (x - mean) * F.exp(-log_std)
        return eps, zero_logdet(x) - F.sum(self.log_std)

    def inverse(self, y):
        self._check(y, "LearnedStandardise.inverse")
        mean, log_std = self._params()
        return y * F.exp(log_std) + mean, zero_logdet(y) + F.sum(self.log_std)
