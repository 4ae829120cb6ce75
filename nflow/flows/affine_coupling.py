"""The affine coupling (RealNVP; Dinh, Sohl-Dickstein & Bengio 2017, eq. 7; Glow §3.3):

    y_a = x_a,   y_b = x_b · s(x_a) + t(x_a),   log|det ∂y/∂x| = Σ log s(x_a)

The layer, then the graph nodes of its fused kernel (family ``affine_coupling``): one pass computes y_b and the
per-sample log-det, one pass back-propagates both. The forms of s and the gradients are written out in the NumPy
twin, ``kernels/reference/affine_coupling.py``.
"""
import numpy as np

import nflow.functional as F
from nflow.backend import get_array_module
from nflow.flows.base import check_input
from nflow.flows.coupling import Coupling, checkerboard
from nflow.kernels.dispatch import kernel_module
from nflow.nn import init
from nflow.nn.module import Parameter, new_array
from nflow.ops.kernel_function import KernelFunction
from nflow.tensor import Tensor


class AffineCoupling(Coupling):
    """Affine coupling y_b = x_b · s(x_a) + t(x_a), fused with its log-det in one kernel pass.

    ``form="sigmoid"`` (Glow) or ``"exp"`` (RealNVP, with the log-scale bounded as γ·tanh(h)).
    """

    def __init__(self, channels, net, mask="channel", parity=0, form="sigmoid", dtype=np.float32):
        super().__init__(channels, net, mask, parity)
        if form not in ("sigmoid", "exp"):
            raise ValueError(f"AffineCoupling: form must be 'sigmoid' or 'exp', got {form!r}")
        if mask == "checkerboard" and form != "exp":
            raise ValueError("AffineCoupling: the checkerboard mask needs form='exp' (s = 1 where h = 0)")
        self.form = form
        if form == "exp":
            # γ starts at 1: with a zero-initialised net both γ and the net would otherwise get zero gradients.
            n_scaled = channels if mask == "checkerboard" else self.n_trans
            self.log_scale_bound = Parameter(new_array(init.ones((1, n_scaled), dtype)))

    def _scale_shift(self, cond, n_out):
        out = self.net(cond)
        h, t = F.split(out, 2, axis=1)
        if self.form == "exp":
            gamma = self.log_scale_bound
            if h.ndim > 2:
                gamma = F.reshape(gamma, (1, n_out) + (1,) * (h.ndim - 2))
            h = gamma * F.tanh(h)
        return h, t

    def _rebuild_and_grad(self, ya_leaf, yb, gyb, glogdet):
        h, t = self._scale_shift(ya_leaf, self.n_trans)
        ops = kernel_module("affine_coupling")
        xb, _ = ops.inverse(yb, h.data, t.data, self.form)
        gxb, gh, gt = ops.forward_backward(xb, h.data, gyb, glogdet, self.form)
        return xb, gxb, [(h, gh), (t, gt)]

    def _check_net_output(self, h, target):
        if h.shape != target.shape:
            raise ValueError(f"AffineCoupling: the network's output splits into log-scale {h.shape}, but the "
                             f"transformed part has shape {target.shape} (the net must output twice its channels)")

    def forward(self, x):
        if self.mask == "checkerboard":
            check_input(x, "AffineCoupling(checkerboard)", expected_ndim=4, channels=self.channels)
            b = checkerboard(x.shape[2], x.shape[3], self.parity, x.dtype, get_array_module(x.data))
            h, t = self._scale_shift(x * Tensor(b), self.channels)
            self._check_net_output(h, x)
            keep = Tensor(1 - b)
            return affine_coupling_forward(x, h * keep, t * keep, self.form)
        xa, xb = self._split(x)
        h, t = self._scale_shift(xa, self.n_trans)
        self._check_net_output(h, xb)
        yb, logdet = affine_coupling_forward(xb, h, t, self.form)
        return self._join(xa, yb), logdet

    def inverse(self, y):
        if self.mask == "checkerboard":
            check_input(y, "AffineCoupling(checkerboard)", expected_ndim=4, channels=self.channels)
            b = checkerboard(y.shape[2], y.shape[3], self.parity, y.dtype, get_array_module(y.data))
            h, t = self._scale_shift(y * Tensor(b), self.channels)
            keep = Tensor(1 - b)
            return affine_coupling_inverse(y, h * keep, t * keep, self.form)
        ya, yb = self._split(y)
        h, t = self._scale_shift(ya, self.n_trans)
        xb, logdet = affine_coupling_inverse(yb, h, t, self.form)
        return self._join(ya, xb), logdet


# ----------------------------------------------------------------------------------------- graph nodes
class AffineCouplingForward(KernelFunction):
    """(x, h, t) -> (y = x·s(h) + t, Σ log s(h)). Keeps: x and h."""

    family = "affine_coupling"

    def __init__(self, form):
        self.form = form

    def forward(self, x, h, t):
        self.saved = (x, h)
        return self.kernel.forward(x, h, t, self.form)

    def backward(self, gy, glogdet):
        x, h = self.saved
        return self.kernel.forward_backward(x, h, gy, glogdet, self.form)


class AffineCouplingInverse(KernelFunction):
    """(y, h, t) -> (x = (y - t)/s(h), -Σ log s(h)). Keeps: y, h and t."""

    family = "affine_coupling"

    def __init__(self, form):
        self.form = form

    def forward(self, y, h, t):
        self.saved = (y, h, t)
        return self.kernel.inverse(y, h, t, self.form)

    def backward(self, gx, glogdet):
        y, h, t = self.saved
        return self.kernel.inverse_backward(y, h, t, gx, glogdet, self.form)


def affine_coupling_forward(x, h, t, form):
    return AffineCouplingForward(form)(x, h, t)


def affine_coupling_inverse(y, h, t, form):
    return AffineCouplingInverse(form)(y, h, t)
