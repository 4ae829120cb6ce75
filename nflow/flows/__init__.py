"""Flow layers: each maps a batch both ways, ``forward(x) -> (y, logdet)``, ``inverse(y) -> (x, logdet)``."""
from nflow.flows.actnorm import ActNorm
from nflow.flows.additive_coupling import AdditiveCoupling
from nflow.flows.affine_coupling import AffineCoupling
from nflow.flows.autoregressive import IAFLayer, MAFLayer
from nflow.flows.base import Flow, FlowSequence
from nflow.flows.invconv import InvConv1x1
from nflow.flows.made import MADE, MaskedLinear
from nflow.flows.nets import MLP, ConvNet, GlowNet, ZeroConv2d
from nflow.flows.normalization import BatchNormFlow, NiceScaling
from nflow.flows.permutations import Flatten, Reverse, Shuffle
from nflow.flows.preprocess import Centre, Logit
from nflow.flows.split import LearnedStandardise, Split
from nflow.flows.squeeze import Squeeze

Sequential = FlowSequence  # the composition, under the name readers of other libraries look for

__all__ = [
    "Flow", "FlowSequence", "Sequential",
    "AdditiveCoupling", "AffineCoupling", "NiceScaling", "ActNorm", "InvConv1x1", "BatchNormFlow",
    "Squeeze", "Reverse", "Shuffle", "Flatten", "Split", "LearnedStandardise", "Logit", "Centre",
    "MAFLayer", "IAFLayer",
    "MLP", "GlowNet", "ConvNet", "ZeroConv2d", "MADE", "MaskedLinear",
]
