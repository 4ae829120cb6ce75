"""Learning-rate warm-up.

Adam's first updates are as large as the learning rate whatever the gradient's scale (m̂/√v̂ ≈ ±1), which can
throw a freshly initialised flow into a region where log-determinants explode. Ramping the rate linearly
from lr/W to lr over the first W steps avoids that (Kingma & Dhariwal 2018 use this for Glow).
"""


def warmup_lr(step, lr, warmup_steps):
    """The learning rate of 1-based ``step``: lr · min(1, step / warmup_steps), or lr without warm-up."""
    if warmup_steps <= 0:
        return lr
    return lr * min(1.0, step / warmup_steps)
