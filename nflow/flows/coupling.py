"""Coupling layers: transform one part of the input conditioned on the rest, so the Jacobian is triangular.

Additive (NICE; Dinh et al. 2014, eq. 5):    y_b = x_b + m(x_a),                 log|det| = 0
Affine   (RealNVP; Dinh et al. 2017, eq. 7): y_b = x_b · s(x_a) + t(x_a),        log|det| = Σ log s(x_a)
with y_a = x_a. The network is never inverted: the inverse is x_b = (y_b - t(y_a)) / s(y_a).

This file holds what both share (masks, the split and join of x_a and x_b); each layer, with the graph nodes of
its fused kernel, is in ``additive_coupling.py`` and ``affine_coupling.py``.

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
from nflow.flows.base import Flow, channel_split_sizes, check_input, seed_backward
from nflow.tensor import Tensor, enable_grad

MASKS = ("channel", "checkerboard")


def checkerboard(height, width, parity, dtype, xp):
    """The (1, 1, H, W) mask b with b[i, j] = (i + j + parity) mod 2."""
    i, j = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return xp.asarray(((i + j + parity) % 2).astype(dtype)[None, None])


class Coupling(Flow):
    """What both couplings share: the mask, the split of the input into (x_a, x_b) and the join back."""

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
