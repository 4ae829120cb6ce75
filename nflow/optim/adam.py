"""Adam (Kingma & Ba 2015, Algorithm 1)."""
from nflow.backend import get_array_module
from nflow.kernels.dispatch import kernel_module
from nflow.optim.optimizer import Optimizer


class Adam(Optimizer):
    """m ← β₁m + (1-β₁)g;  v ← β₂v + (1-β₂)g²;  θ ← θ - lr · m̂ / (√v̂ + ε),
    with the bias corrections m̂ = m / (1-β₁ᵗ), v̂ = v / (1-β₂ᵗ), and ε added to √v̂ itself (Algorithm 1,
    and PyTorch's Adam). The update of each parameter is one kernel call (``kernels/reference/adam.py``).
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
        t = self.step_count
        # one fused pass per parameter (kernel family "adam"; the NumPy twin makes seven)
        kernel_module("adam").update(p.data, grad, state["m"], state["v"], step_size=self.lr / (1 - self.beta1 ** t),
                              beta1=self.beta1, beta2=self.beta2, eps=self.eps, bias2=1 - self.beta2 ** t)
