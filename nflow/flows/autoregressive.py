"""Affine autoregressive flows: MAF (Papamakarios, Pavlakou & Murray 2017) and IAF (Kingma et al. 2016).

One transform between a data-side vector x and a noise-side vector u, D = len(x), with a MADE conditioner
(``made.py``) giving (μ_i, α_i) from the variables before i in the layer's order:

    u_i = (x_i - μ_i) · exp(-α_i)          x_i = u_i · exp(α_i) + μ_i

The two papers differ only in which side the conditioner reads:

- **MAF** (density estimation): (μ_i, α_i) = MADE(x)_i depends on x_<i. The density direction x -> u is ONE pass
  of MADE; the sampling direction u -> x needs D passes (x_i needs x_<i first), MAF paper §3.1.
- **IAF** (fast sampling): (μ_i, α_i) = MADE(u)_i depends on u_<i. The sampling direction u -> x is ONE pass;
  the density direction x -> u needs D passes, IAF paper §4.

nflow's flow contract is data -> latent: ``forward(x) = (u, log|det ∂u/∂x|)`` and ``inverse(u) = (x, ...)``.
In both layers ∂u/∂x is triangular in the layer's order (u_i depends on x_j only for j = i or j before i) with
diagonal exp(-α_i), so

    log|det ∂u/∂x| = -Σ_i α_i.

The D-pass direction is a fixed-point sweep: start at 0, evaluate MADE on the current estimate, apply the
transform; after pass k every variable of degree ≤ k is exact (it depends only on lower degrees, exact after pass
k-1), so D passes give the exact result and the α of the last pass is the exact log-scale. Cost: O(D) MADE passes.

Stabilised scale. α is MADE's raw log-scale a, softly clamped: α = B · tanh(a / B) with B = LOG_SCALE_BOUND.
For |a| ≪ B this is a itself (slope 1 at 0, so a fresh layer at a = 0 is the identity); it can never pass ±B,
so one layer scales by at most e^B: exp cannot overflow early in training, and the D-pass inverse, which feeds its
own outputs back into MADE, cannot blow up through one huge scale. It keeps exact invertibility because α is any
fixed function of the variables before i — the clamp changes what the network can express, not the algebra
above. (The IAF paper's gate x = σ·u + (1-σ)·m with σ = sigmoid(s + bias) is the other common choice; it bounds
the scale to (0, 1) in the sampling direction and does not start at the identity with a zero-initialised MADE.)
"""
import numpy as np

import nflow.functional as F
from nflow.backend import get_array_module
from nflow.flows.base import Flow, check_input
from nflow.flows.made import MADE
from nflow.tensor import Tensor

LOG_SCALE_BOUND = 5.0  # B in α = B·tanh(a/B): one layer scales a coordinate by at most e^5 ≈ 148 either way


def soft_clamp(a, bound=LOG_SCALE_BOUND):
    """α = B · tanh(a / B): ≈ a near 0, |α| < B always."""
    return F.tanh(a * (1.0 / bound)) * bound


class _AffineAutoregressive(Flow):
    """The transform u_i = (x_i - μ_i) · exp(-α_i) with a MADE conditioner; subclasses say which side it reads."""

    def __init__(self, features, hidden=(64, 64), order="natural", seed=None, dtype=np.float32):
        super().__init__()
        self.features = features
        self.made = MADE(features, hidden, order=order, seed=seed, dtype=dtype)

    def _shift_log_scale(self, h):
        mu, a = self.made(h)
        return mu, soft_clamp(a)

    def _check(self, x):
        check_input(x, type(self).__name__, expected_ndim=2, channels=self.features)

    def _to_noise_one_pass(self, x, cond):
        """u = (x - μ) · exp(-α) with (μ, α) from ``cond``; returns (u, -Σ α)."""
        mu, alpha = self._shift_log_scale(cond)
        return (x - mu) * F.exp(-alpha), -F.sum_per_sample(alpha)

    def _to_data_one_pass(self, u, cond):
        """x = u · exp(α) + μ with (μ, α) from ``cond``; returns (x, Σ α)."""
        mu, alpha = self._shift_log_scale(cond)
        return u * F.exp(alpha) + mu, F.sum_per_sample(alpha)

    def _sweep(self, given, one_pass):
        """Solve for the side MADE reads, ``features`` passes from 0 (see the module docstring)."""
        estimate = Tensor(get_array_module(given.data).zeros_like(given.data))
        for _ in range(self.features):
            estimate, logdet = one_pass(given, estimate)
        return estimate, logdet


class MAFLayer(_AffineAutoregressive):
    """Masked autoregressive flow layer: (μ_i, α_i) from x_<i. Density (forward, x -> u): one pass;
    sampling (inverse, u -> x): D passes. ``order`` and ``seed`` as in :class:`~nflow.flows.made.MADE`."""

    def forward(self, x):
        self._check(x)
        return self._to_noise_one_pass(x, x)

    def inverse(self, u):
        self._check(u)
        return self._sweep(u, self._to_data_one_pass)


class IAFLayer(_AffineAutoregressive):
    """Inverse autoregressive flow layer: (μ_i, α_i) from u_<i. Sampling (inverse, u -> x): one pass;
    density (forward, x -> u): D passes. ``order`` and ``seed`` as in :class:`~nflow.flows.made.MADE`."""

    def forward(self, x):
        self._check(x)
        return self._sweep(x, self._to_noise_one_pass)

    def inverse(self, u):
        self._check(u)
        return self._to_data_one_pass(u, u)
