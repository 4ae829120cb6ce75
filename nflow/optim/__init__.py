"""Optimizers and gradient clipping."""
from nflow.optim.adam import Adam
from nflow.optim.clip import clip_grad_norm, grad_norm
from nflow.optim.optimizer import Optimizer
from nflow.optim.sgd import SGD

__all__ = ["Optimizer", "Adam", "SGD", "clip_grad_norm", "grad_norm"]
