"""NICE's additive coupling (Dinh, Krueger & Bengio 2014, eq. 5):  y_a = x_a,  y_b = x_b + m(x_a),  log|det| = 0.

The layer, then the graph nodes of its fused join y = x + E·m(x_a): E embeds the network's output m(x_a), of
shape (N, C_b, ...), into channels [start, start + C_b) of axis 1, so the whole input x and the shift go to one
node, which calls the current backend's kernel (family ``additive_coupling``; the equations are in its NumPy twin
``kernels/reference/additive_coupling.py``) and gets all of y in one pass, instead of splitting x, adding and
concatenating. Gradients: ∂L/∂x = ∂L/∂y, ∂L/∂m = the block's slice of ∂L/∂y (negated for the inverse). Neither
depends on x or m, so the nodes keep no arrays: only the block.
"""
from nflow.flows.base import zero_logdet
from nflow.flows.coupling import Coupling
from nflow.ops.kernel_function import KernelFunction


class AdditiveCoupling(Coupling):
    """NICE's additive coupling, y_b = x_b + m(x_a); volume-preserving (log-det 0). Channel mask only.

    The join is one fused kernel pass (the nodes below): the whole x and m(x_a) go in, all
    of y comes out, with m(x_a) added to the transformed channel block; no split of x_b, no concatenation.
    """

    def __init__(self, channels, net, parity=0):
        super().__init__(channels, net, "channel", parity)
        # the transformed block x_b: the second channel block for parity 0, the first for parity 1
        self.trans_start = self.n_cond if parity == 0 else 0

    def _shift(self, cond, target):
        """m(x_a), checked against the transformed part's shape (N, C_b, ...) of ``target`` (x or y)."""
        shift = self.net(cond)
        expected = (target.shape[0], self.n_trans) + tuple(target.shape[2:])
        if shift.shape != expected:
            raise ValueError(f"AdditiveCoupling: the network's output has shape {shift.shape}, but the transformed "
                             f"part has shape {expected} (the net must output C_b = {self.n_trans} channels)")
        return shift

    def forward(self, x):
        xa, _ = self._split(x)
        return additive_coupling_forward(x, self._shift(xa, x), self.trans_start), zero_logdet(x)

    def _rebuild_and_grad(self, ya_leaf, yb, gyb, glogdet):
        shift = self.net(ya_leaf)
        return yb - shift.data, gyb, [(shift, gyb)]  # x_b = y_b - m(y_a); ∂L/∂x_b = ∂L/∂y_b = ∂L/∂m

    def inverse(self, y):
        ya, _ = self._split(y)
        return additive_coupling_inverse(y, self._shift(ya, y), self.trans_start), zero_logdet(y)


# ----------------------------------------------------------------------------------------- graph nodes
class AdditiveCouplingForward(KernelFunction):
    """(x, m) -> y = x with m added to channels [start, start + C_b). Keeps: the block (start, C_b) only."""

    family = "additive_coupling"

    def __init__(self, start):
        self.start = start

    def forward(self, x, shift):
        self.width = shift.shape[1]
        return self.kernel.forward(x, shift, self.start)

    def backward(self, gy):
        return self.kernel.forward_backward(gy, self.start, self.width)


class AdditiveCouplingInverse(KernelFunction):
    """(y, m) -> x = y with m subtracted from channels [start, start + C_b). Keeps: the block (start, C_b) only."""

    family = "additive_coupling"

    def __init__(self, start):
        self.start = start

    def forward(self, y, shift):
        self.width = shift.shape[1]
        return self.kernel.inverse(y, shift, self.start)

    def backward(self, gx):
        return self.kernel.inverse_backward(gx, self.start, self.width)


def additive_coupling_forward(x, shift, start):
    return AdditiveCouplingForward(start)(x, shift)


def additive_coupling_inverse(y, shift, start):
    return AdditiveCouplingInverse(start)(y, shift)
