"""Coupling layers: transform one part of the input conditioned on the rest, so the Jacobian is triangular.

Additive (NICE; Dinh et al. 2014, eq. 5):    y_b = x_b + m(x_a),                 log|det| = 0
Affine   (RealNVP; Dinh et al. 2017, eq. 7): y_b = x_b · s(x_a) + t(x_a),        log|det| = Σ log s(x_a)
with y_a = x_a. The network is never inverted: the inverse is x_b = (y_b - t(y_a)) / s(y_a).

Masks:
- ``"channel"``: split axis 1 (channels of an image, features of a vector) into the first ⌊C/2⌋ and the
  rest; ``parity=1`` swaps the roles, so alternating layers transform every part.
- ``"checkerboard"`` (RealNVP §3.4, images, ``"exp"`` form): b[i, j] = (i + j + parity) mod 2; the network
  sees x·b and its outputs are multiplied by (1 - b), so positions with b = 1 pass through unchanged.

The network's output has 2·C_b channels (affine): the first C_b are the raw log-scale h, the last C_b the
shift t. Forms of s (see ``kernels/reference/affine_coupling.py``): Glow's ``"sigmoid"``, s = sigmoid(h + 2);
RealNVP's ``"exp"``, s = exp(γ · tanh(h)) with a learned per-channel γ bounding the log-scale.
"""
import numpy as np

import nflow.functional as F
from nflow.backend import get_array_module
from nflow.flows.additive_nodes import additive_coupling_forward, additive_coupling_inverse
from nflow.flows.base import Flow, channel_split_sizes, check_input, seed_backward, zero_logdet
from nflow.flows.functions import affine_coupling_forward, affine_coupling_inverse
from nflow.kernels.dispatch import kernel
from nflow.nn import init
from nflow.nn.module import Parameter, new_array
from nflow.tensor import Tensor, enable_grad

MASKS = ("channel", "checkerboard")


def checkerboard(height, width, parity, dtype, xp):
    """The (1, 1, H, W) mask b with b[i, j] = (i + j + parity) mod 2."""
    i, j = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return xp.asarray(((i + j + parity) % 2).astype(dtype)[None, None])


class _Coupling(Flow):
    def __init__(self, channels, net, mask, parity):
        super().__init__()
        if mask not in MASKS:
            raise ValueError(f"{type(self).__name__}: mask must be one of {MASKS}, got {mask!r}")
        if parity not in (0, 1):
            raise ValueError(f"{type(self).__name__}: parity must be 0 or 1, got {parity}")
        self.channels, self.mask, self.parity = channels, mask, parity
        self.net = net
        if mask == "channel":
            self.n_cond, self.n_trans = channel_split_sizes(channels, type(self).__name__)

    def _split(self, x):
        check_input(x, type(self).__name__, channels=self.channels)
        first = self.n_cond if self.parity == 0 else self.n_trans
        a, b = F.split(x, [first], axis=1)
        return (a, b) if self.parity == 0 else (b, a)

    def _join(self, cond, trans):
        return F.concat([cond, trans] if self.parity == 0 else [trans, cond], axis=1)

    def _split_array(self, a):
        first = self.n_cond if self.parity == 0 else self.n_trans
        p, q = a[:, :first], a[:, first:]
        return (p, q) if self.parity == 0 else (q, p)

    def _join_array(self, cond, trans):
        xp = get_array_module(cond)
        return xp.concatenate([cond, trans] if self.parity == 0 else [trans, cond], axis=1)

    def backward_from_output(self, y, gy, glogdet):
        """Reversible backprop sharing the network between rebuild and re-run: y_a = x_a, so the network's
        output computed (with a graph) to invert y_b is the very one the forward pass used. Cost: one
        network forward and backward, as in the stored path, plus the element-wise inverse."""
        if self.mask != "channel":
            return super().backward_from_output(y, gy, glogdet)
        ya, yb = self._split_array(y)
        gya, gyb = self._split_array(gy)
        ya_leaf = Tensor(ya, requires_grad=True)
        with enable_grad():
            xb, gxb, pairs = self._rebuild_and_grad(ya_leaf, yb, gyb, glogdet)
            seed_backward(pairs)
        gxa = gya + ya_leaf.grad if ya_leaf.grad is not None else gya
        return self._join_array(ya, xb), self._join_array(gxa, gxb)

    def describe(self):
        return f"{type(self).__name__}(mask={self.mask}, parity={self.parity})"


class AdditiveCoupling(_Coupling):
    """NICE's additive coupling, y_b = x_b + m(x_a); volume-preserving (log-det 0). Channel mask only.

    The join is one fused kernel pass (``nflow/flows/additive_nodes.py``): the whole x and m(x_a) go in, all
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


class AffineCoupling(_Coupling):
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
        ops = kernel("affine_coupling")
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
