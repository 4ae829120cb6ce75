"""Preprocessing flows from [0, 1)-valued dequantized images to the space the model works in.

Logit (RealNVP §4.1): p = α + (1 - 2α)·x keeps away from 0 and 1, then y = logit(p) = log p - log(1 - p).
    log|det ∂y/∂x| = Σ [log(1 - 2α) - log p - log(1 - p)]
Centre (Glow): y = x - ½, log-det 0.
"""
import math

import nflow.functional as F
from nflow.flows.base import Flow, zero_logdet

LOGIT_ALPHA = 0.05  # RealNVP's α for CIFAR-10 (1e-6 is also common for MNIST)
CENTRE = 0.5


class Logit(Flow):
    """x in (0, 1) -> logit(α + (1 - 2α) x)."""

    def __init__(self, alpha=LOGIT_ALPHA):
        super().__init__()
        if not 0 <= alpha < 0.5:
            raise ValueError(f"Logit: alpha must be in [0, 0.5), got {alpha}")
        self.alpha = alpha

    def forward(self, x):
        p = self.alpha + (1 - 2 * self.alpha) * x
        log_p, log_1mp = F.log(p), F.log(1.0 - p)
        logdet = F.sum_per_sample(math.log(1 - 2 * self.alpha) - log_p - log_1mp)
        return log_p - log_1mp, logdet

    def inverse(self, y):
        p = F.sigmoid(y)
        x = (p - self.alpha) * (1.0 / (1 - 2 * self.alpha))
        # log|det ∂x/∂y| = Σ [log p + log(1 - p) - log(1 - 2α)], with log p = logsigmoid(y)
        logdet = F.sum_per_sample(F.logsigmoid(y) + F.logsigmoid(-y) - math.log(1 - 2 * self.alpha))
        return x, logdet


class Centre(Flow):
    """x -> x - ½ (Glow's preprocessing of [0, 1) input); volume-preserving."""

    def forward(self, x):
        return x - CENTRE, zero_logdet(x)

    def inverse(self, y):
        return y + CENTRE, zero_logdet(y)
