"""NICE (Dinh, Krueger & Bengio 2014): additive couplings with MLPs and a diagonal scaling.

MNIST configuration of the paper (§5.1): 4 additive coupling layers, each m() a ReLU MLP of 5 hidden
layers of 1000 units, alternating which half is transformed, a final diagonal scaling exp(s), and a
standard logistic prior. Input: images flattened to D = C·H·W features in [0, 1).
"""
import numpy as np

from nflow.flows.base import FlowSequence
from nflow.flows.additive_coupling import AdditiveCoupling
from nflow.flows.nets import MLP
from nflow.flows.normalization import NiceScaling
from nflow.flows.permutations import Flatten
from nflow.models.base import FlowModel, require_count


class NICE(FlowModel):
    name = "NICE"

    def __init__(self, input_shape=(1, 28, 28), couplings=4, hidden=1000, depth=5, prior="logistic",
                 input_range=(0.0, 1.0), dtype=np.float32):
        input_shape = tuple(input_shape)
        if not input_shape:
            raise ValueError("NICE: input_shape must name at least one axis, got ()")
        require_count("NICE", "every axis of input_shape", min(input_shape))
        for name, value in (("couplings", couplings), ("hidden", hidden)):
            require_count("NICE", name, value)
        require_count("NICE", "depth", depth, minimum=0)  # depth 0: a linear m(), still a valid coupling
        features = int(np.prod(input_shape))
        layers = []
        for i in range(couplings):
            net = MLP(features // 2, features - features // 2, hidden, depth, dtype=dtype)
            layers.append(AdditiveCoupling(features, net, parity=i % 2))
        layers.append(NiceScaling(features, dtype=dtype))
        super().__init__(input_shape, Flatten(input_shape), [FlowSequence(layers)], prior=prior,
                         input_range=input_range, dtype=dtype)
        self.config = dict(model="nice", input_shape=list(input_shape), couplings=couplings, hidden=hidden,
                           depth=depth, prior=prior)
