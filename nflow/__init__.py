"""nflow: normalizing flows (NICE, RealNVP, Glow, MAF, IAF) from scratch on a minimal reverse-mode tensor core.

    import nflow
    import nflow.functional as F

    x = nflow.tensor([[1.0, 2.0]], requires_grad=True)
    y = F.sum(F.exp(x) * 3.0)
    y.backward()          # x.grad == 3 * exp(x)
"""
from nflow import functional, nn, optim
from nflow.backend import backend, get_backend, set_backend
from nflow.errors import NflowError
from nflow.finite_differences import NonDifferentiablePoint
from nflow.gradcheck import gradcheck
from nflow.graph import graph
from nflow.metrics import bits_per_dim
from nflow.random import seed
from nflow.tensor import Function, Tensor, enable_grad, is_grad_enabled, no_grad, tensor

__version__ = "0.2.0"

__all__ = [
    "Tensor", "tensor", "Function", "no_grad", "enable_grad", "is_grad_enabled",
    "backend", "get_backend", "set_backend", "gradcheck", "graph", "NonDifferentiablePoint", "NflowError", "seed",
    "functional", "nn", "optim",
]
