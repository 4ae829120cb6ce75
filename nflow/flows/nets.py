"""The networks inside coupling layers: any function of the conditioning half, never inverted.

- :class:`MLP` (NICE, and RealNVP on vectors): Linear-ReLU stacks, zero-initialised last layer.
- :class:`GlowNet` (Glow, §3.3): conv3x3 - ReLU - conv1x1 - ReLU - ZeroConv3x3.
- :class:`ConvNet` (RealNVP on images): conv3x3 - ReLU - conv3x3 - ReLU - ZeroConv3x3, a plain stand-in for
  the paper's ResNet blocks.

The last layer starts at zero so a fresh coupling is the identity (or, with Glow's sigmoid(h + 2), a
uniform scaling close to it): deep flows then start well-conditioned.

The two convolutional networks take and return NCHW tensors but keep their hidden activations channel-major
(CNHW, ``nflow/ops/conv.py``): the layout change is paid once at each end, on the coupling's few channels,
instead of around every convolution on the 256-512 hidden ones. The weights are the same in either layout.
"""
import numpy as np

import nflow.functional as F
from nflow.nn import init
from nflow.nn.layers import Conv2d, Linear
from nflow.nn.module import Module, ModuleList, Parameter, new_array

GLOW_INIT_STD = 0.05       # std of Glow's hidden conv weights at initialisation (openai/glow ``conv2d``)
ZERO_CONV_LOGSCALE = 3.0   # ZeroConv output scale exp(3 · s): Glow's ``logscale_factor=3``
HIDDEN_LAYOUT = "CNHW"     # the convolutional nets' internal layout (see the module docstring)


class MLP(Module):
    """in -> [Linear - ReLU] × depth -> Linear(out), the last layer zero-initialised."""

    def __init__(self, in_features, out_features, hidden, depth, dtype=np.float32):
        super().__init__()
        sizes = [in_features] + [hidden] * depth
        self.hidden = ModuleList([Linear(a, b, dtype=dtype, activation="relu")  # the ReLU fused into the op
                                  for a, b in zip(sizes[:-1], sizes[1:])])
        self.out = Linear(sizes[-1], out_features, zero_init=True, dtype=dtype)

    def forward(self, x):
        for layer in self.hidden:
            x = layer(x)
        return self.out(x)


class ZeroConv2d(Module):
    """y = (conv3x3(x) + b) · exp(3 · s), with weight, b and s all zero at the start (Glow's ``conv2d_zeros``).

    ``layout`` as in :class:`~nflow.nn.layers.Conv2d`; s is stored as (C_out, 1, 1) in both layouts."""

    def __init__(self, in_channels, out_channels, dtype=np.float32, layout="NCHW"):
        super().__init__()
        self.conv = Conv2d(in_channels, out_channels, 3, zero_init=True, dtype=dtype, layout=layout)
        self.log_scale = Parameter(new_array(init.zeros((out_channels, 1, 1), dtype)))

    def forward(self, x):
        scale = F.exp(self.log_scale * ZERO_CONV_LOGSCALE)
        if self.conv.layout == "CNHW":
            scale = F.reshape(scale, (self.conv.out_channels, 1, 1, 1))  # broadcast over N, H, W
        return self.conv(x) * scale


def swap_batch_and_channels(x):
    """(N, C, H, W) <-> (C, N, H, W), its own inverse: a view in the graph (the first convolution reads it in
    place; the coupling kernels copy the net's output to C order, which they do for channel slices anyway)."""
    return F.transpose(x, (1, 0, 2, 3))


class GlowNet(Module):
    """Glow's coupling network NN(): conv3x3 - ReLU - conv1x1 - ReLU - ZeroConv3x3 (Kingma & Dhariwal 2018)."""

    def __init__(self, in_channels, out_channels, hidden, dtype=np.float32):
        super().__init__()
        self.conv1 = Conv2d(in_channels, hidden, 3, dtype=dtype, layout=HIDDEN_LAYOUT, activation="relu")
        self.conv2 = Conv2d(hidden, hidden, 1, dtype=dtype, layout=HIDDEN_LAYOUT, activation="relu")
        for conv in (self.conv1, self.conv2):
            conv.weight.data[...] = new_array(init.normal(conv.weight.shape, GLOW_INIT_STD, dtype))
        self.conv3 = ZeroConv2d(hidden, out_channels, dtype=dtype, layout=HIDDEN_LAYOUT)

    def forward(self, x):
        h = self.conv3(self.conv2(self.conv1(swap_batch_and_channels(x))))  # conv1, conv2: ReLU fused
        return swap_batch_and_channels(h)


class ConvNet(Module):
    """RealNVP's s/t network on images: conv3x3 - ReLU - conv3x3 - ReLU - ZeroConv3x3."""

    def __init__(self, in_channels, out_channels, hidden, dtype=np.float32):
        super().__init__()
        self.conv1 = Conv2d(in_channels, hidden, 3, dtype=dtype, layout=HIDDEN_LAYOUT, activation="relu")
        self.conv2 = Conv2d(hidden, hidden, 3, dtype=dtype, layout=HIDDEN_LAYOUT, activation="relu")
        self.conv3 = ZeroConv2d(hidden, out_channels, dtype=dtype, layout=HIDDEN_LAYOUT)

    def forward(self, x):
        h = self.conv3(self.conv2(self.conv1(swap_batch_and_channels(x))))  # conv1, conv2: ReLU fused
        return swap_batch_and_channels(h)
