"""Adam (Kingma & Ba 2015, Algorithm 1)."""
from nflow.backend import get_array_module
from nflow.optim.optimizer import Optimizer


class Adam(Optimizer):
    """m ← β₁m + (1-β₁)g;  v ← β₂v + (1-β₂)g²;  θ ← θ - lr · m̂ / (√v̂ + ε),
    with the bias corrections m̂ = m / (1-β₁ᵗ), v̂ = v / (1-β₂ᵗ).
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, lr)
        self.beta1, self.beta2 = betas
        self.eps = eps

    def update(self, p, grad, state):
        xp = get_array_module(p.data)
        if "m" not in state:
            state["m"] = xp.zeros_like(p.data)
            state["v"] = xp.zeros_like(p.data)
        m, v = state["m"], state["v"]
        m *= self.beta1
        m += (1 - self.beta1) * grad
        v *= self.beta2
        v += (1 - self.beta2) * grad * grad
        t, dt = self.step_count, p.dtype.type
        bias1, bias2 = 1 - self.beta1 ** t, 1 - self.beta2 ** t
        # θ ← θ - lr · m̂ / (√v̂ + ε) with ε added to √v̂ itself, as in Algorithm 1 (and PyTorch's Adam).
        p.data -= dt(self.lr / bias1) * m / (xp.sqrt(v / dt(bias2)) + dt(self.eps))
