"""Stochastic gradient descent with optional (heavy-ball) momentum."""
from nflow.optim.optimizer import Optimizer


class SGD(Optimizer):
    """v ← μ v + g;  θ ← θ - lr · v   (μ = 0: plain gradient descent)."""

    def __init__(self, params, lr=1e-2, momentum=0.0):
        super().__init__(params, lr)
        self.momentum = momentum

    def update(self, p, grad, state):
        if self.momentum:
            if "velocity" not in state:
                state["velocity"] = grad.copy()
            else:
                state["velocity"] *= self.momentum
                state["velocity"] += grad
            grad = state["velocity"]
        p.data -= p.dtype.type(self.lr) * grad
