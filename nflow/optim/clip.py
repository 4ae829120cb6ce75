"""Gradient-norm clipping."""
import math

from nflow.backend import get_array_module


def grad_norm(params):
    """The global L2 norm of all parameter gradients (0.0 when none has a gradient)."""
    total = 0.0
    for p in params:
        if p.grad is not None:
            total += float((p.grad.astype("float64") ** 2).sum())
    return math.sqrt(total)


def clip_grad_norm(params, max_norm):
    """Scale all gradients by min(1, max_norm / ‖g‖) so their global norm is at most ``max_norm``.

    Returns the norm before clipping (inf or nan when a gradient is not finite, left unscaled: the
    caller decides whether to skip the step).
    """
    params = list(params)
    norm = grad_norm(params)
    if math.isfinite(norm) and norm > max_norm:
        scale = max_norm / (norm + 1e-12)
        for p in params:
            if p.grad is not None:
                p.grad *= get_array_module(p.grad).asarray(scale, dtype=p.grad.dtype)
    return norm
