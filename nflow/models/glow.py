"""Glow (Kingma & Dhariwal 2018): levels of [squeeze, K × step of flow, split], a learned top prior.

A step of flow (§3, Fig. 2a): ActNorm -> invertible 1x1 conv (plain or LU) -> coupling (affine with
s = sigmoid(h + 2), or additive), the coupling's network conv3x3 - ReLU - conv1x1 - ReLU - ZeroConv3x3.
Each level but the last ends with a split whose factored-out half has a learned conditional Gaussian prior;
the last ends with a learned top prior (both written as standardising flows, :mod:`nflow.flows.split`). Input [0, 1) is centred (x - ½).
"""
import numpy as np

from nflow.flows.base import FlowSequence, channel_split_sizes
from nflow.flows.additive_coupling import AdditiveCoupling
from nflow.flows.affine_coupling import AffineCoupling
from nflow.flows.actnorm import ActNorm
from nflow.flows.invconv import InvConv1x1
from nflow.flows.nets import GlowNet
from nflow.flows.squeeze import Squeeze
from nflow.flows.preprocess import Centre
from nflow.flows.split import LearnedStandardise, Split
from nflow.models.base import FlowModel, require_count

COUPLINGS = ("affine", "additive")


def step_of_flow(channels, hidden, lu, coupling, dtype):
    """ActNorm -> InvConv1x1 -> coupling, as a list of layers."""
    n_cond, n_trans = channel_split_sizes(channels, "Glow step of flow")
    if coupling == "affine":
        layer = AffineCoupling(channels, GlowNet(n_cond, 2 * n_trans, hidden, dtype=dtype), form="sigmoid", dtype=dtype)
    else:
        layer = AdditiveCoupling(channels, GlowNet(n_cond, n_trans, hidden, dtype=dtype))
    return [ActNorm(channels, dtype=dtype), InvConv1x1(channels, lu=lu, dtype=dtype), layer]


class Glow(FlowModel):
    name = "Glow"

    def __init__(self, input_shape=(1, 28, 28), levels=2, steps=8, hidden=256, lu=True, coupling="affine",
                 dtype=np.float32):
        if coupling not in COUPLINGS:
            raise ValueError(f"Glow: coupling must be one of {COUPLINGS}, got {coupling!r}")
        input_shape = tuple(input_shape)
        if len(input_shape) != 3:
            raise ValueError(f"Glow: input_shape must be (C, H, W), got {input_shape}")
        for name, value in (("input_shape's C, H and W", min(input_shape)), ("levels", levels), ("steps", steps),
                            ("hidden", hidden)):
            require_count("Glow", name, value)
        c, h, w = input_shape
        if h % (2 ** levels) or w % (2 ** levels):
            raise ValueError(f"Glow: {levels} levels squeeze the image {levels} times; H and W must be divisible "
                             f"by 2^{levels} = {2 ** levels}, got input shape {input_shape}")
        flows = []
        for level in range(levels):
            c, h, w = 4 * c, h // 2, w // 2
            layers = [Squeeze()]
            for _ in range(steps):
                layers += step_of_flow(c, hidden, lu, coupling, dtype)
            if level < levels - 1:
                layers.append(Split(c, dtype=dtype))
                c //= 2
            else:
                layers.append(LearnedStandardise((c, h, w), dtype=dtype))
            flows.append(FlowSequence(layers))
        super().__init__(input_shape, Centre(), flows, input_range=(0.0, 1.0), dtype=dtype)
        self.config = dict(model="glow", input_shape=list(input_shape), levels=levels, steps=steps,
                           hidden=hidden, lu=lu, coupling=coupling)
