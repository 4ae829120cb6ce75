"""RealNVP (Dinh, Sohl-Dickstein & Bengio 2017): affine couplings with masks, squeeze and multi-scale.

Images (§3.6, §4.1): logit preprocessing; at each scale but the last, 3 checkerboard couplings (alternating
masks), a squeeze, 3 channel-wise couplings, then half of the channels are factored out; the last scale has
4 checkerboard couplings. Log-scales are bounded as γ·tanh(h). The s/t networks here are plain conv nets
(:class:`~nflow.flows.nets.ConvNet`) in place of the paper's ResNets. Optional batch-norm flow after each
coupling (§3.7).

Vectors (the 2-D toy densities): ``couplings`` affine couplings with MLP nets, alternating halves.
"""
import numpy as np

from nflow.flows.affine_coupling import AffineCoupling
from nflow.flows.base import FlowSequence
from nflow.flows.nets import MLP, ConvNet
from nflow.flows.normalization import BatchNormFlow
from nflow.flows.preprocess import LOGIT_ALPHA, Logit
from nflow.flows.split import Split
from nflow.flows.squeeze import Squeeze
from nflow.models.base import FlowModel, require_count

CHECKERBOARD_PER_SCALE = 3
CHANNEL_PER_SCALE = 3
CHECKERBOARD_LAST_SCALE = 4


class RealNVP(FlowModel):
    name = "RealNVP"

    def __init__(self, input_shape=(1, 28, 28), scales=2, hidden=64, couplings=8, depth=2,
                 batch_norm=False, logit_alpha=LOGIT_ALPHA, dtype=np.float32):
        input_shape = tuple(input_shape)
        if len(input_shape) in (1, 3):
            require_count("RealNVP", "every axis of input_shape", min(input_shape))
        for name, value in (("scales", scales), ("hidden", hidden), ("couplings", couplings)):
            require_count("RealNVP", name, value)
        require_count("RealNVP", "depth", depth, minimum=0)
        self_config = dict(model="realnvp", input_shape=list(input_shape), scales=scales, hidden=hidden,
                           couplings=couplings, depth=depth, batch_norm=batch_norm, logit_alpha=logit_alpha)

        def with_bn(layer, channels):
            return [layer, BatchNormFlow(channels, dtype=dtype)] if batch_norm else [layer]

        if len(input_shape) == 1:  # vectors: MLP couplings, no preprocessing
            d = input_shape[0]
            layers = []
            for i in range(couplings):
                net = MLP(d // 2, 2 * (d - d // 2), hidden, depth, dtype=dtype)
                layers += with_bn(AffineCoupling(d, net, "channel", i % 2, form="exp", dtype=dtype), d)
            super().__init__(input_shape, FlowSequence([]), [FlowSequence(layers)], dtype=dtype)
        elif len(input_shape) == 3:
            c, h, w = input_shape
            levels = []
            for scale in range(scales):
                last = scale == scales - 1
                layers = []
                n_checker = CHECKERBOARD_LAST_SCALE if last else CHECKERBOARD_PER_SCALE
                for i in range(n_checker):
                    net = ConvNet(c, 2 * c, hidden, dtype=dtype)
                    layers += with_bn(AffineCoupling(c, net, "checkerboard", i % 2, form="exp", dtype=dtype), c)
                if not last:
                    if h % 2 or w % 2:
                        raise ValueError(f"RealNVP: scale {scale} would squeeze a {h}x{w} image; spatial sizes "
                                         f"must be divisible by 2^{scales - 1} (input {input_shape})")
                    layers.append(Squeeze())
                    c, h, w = 4 * c, h // 2, w // 2
                    for i in range(CHANNEL_PER_SCALE):
                        net = ConvNet(c // 2, 2 * (c - c // 2), hidden, dtype=dtype)
                        layers += with_bn(AffineCoupling(c, net, "channel", i % 2, form="exp", dtype=dtype), c)
                    layers.append(Split(c, learned_prior=False, dtype=dtype))  # half the channels leave here
                    c = c // 2
                levels.append(FlowSequence(layers))
            super().__init__(input_shape, Logit(logit_alpha), levels, input_range=(0.0, 1.0), dtype=dtype)
        else:
            raise ValueError(f"RealNVP: input_shape must be (D,) or (C, H, W), got {input_shape}")
        self.config = self_config


__all__ = ["RealNVP"]
