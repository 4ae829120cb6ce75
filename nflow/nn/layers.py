"""Dense and convolutional layers."""
import numpy as np

from nflow.nn import init
from nflow.nn.module import Module, Parameter, new_array
from nflow.ops.conv import ACTIVATIONS, CHANNEL_AXIS, LAYOUTS, conv2d
from nflow.ops.linear import linear


class Linear(Module):
    """y = x Wᵀ + b, with W of shape (out_features, in_features), Glorot-uniform initialised.

    ``activation="relu"`` applies max(·, 0) inside the same op (``nflow/ops/linear.py``: bias and ReLU in
    place, W's gradient made in W's layout). ``zero_init=True`` starts W and b at zero: the layer outputs 0
    (used as the last layer of coupling networks so that a fresh flow is the identity; Kingma & Dhariwal 2018, §3.3).
    """

    def __init__(self, in_features, out_features, bias=True, zero_init=False, dtype=np.float32, rng=None,
                 activation=None):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"Linear: activation must be one of {ACTIVATIONS}, got {activation!r}")
        self.in_features, self.out_features, self.activation = in_features, out_features, activation
        shape = (out_features, in_features)
        w = init.zeros(shape, dtype) if zero_init else init.xavier_uniform(shape, dtype, rng)
        self.weight = Parameter(new_array(w))
        self.bias = Parameter(new_array(init.zeros((out_features,), dtype))) if bias else None

    def forward(self, x):
        if x.shape[-1] != self.in_features:
            raise ValueError(f"Linear({self.in_features}, {self.out_features}): input has {x.shape[-1]} features "
                             f"(shape {x.shape}), expected {self.in_features}")
        return linear(x, self.weight, self.bias, activation=self.activation)


class Conv2d(Module):
    """Stride-1, 'same'-padded convolution, weight (out, in, k, k), He-uniform initialised.

    ``layout``: ``"NCHW"`` (the default) or ``"CNHW"``, channel-major, for layers inside a network that keeps its
    activations channel-major (see ``nflow/ops/conv.py`` for why). The weight is the same in both layouts.
    ``activation="relu"`` applies max(·, 0) to the output inside the same op (bias and ReLU fused, one pass).
    ``zero_init=True`` starts weight and bias at zero (see :class:`Linear`).
    """

    def __init__(self, in_channels, out_channels, kernel_size=3, bias=True, zero_init=False,
                 dtype=np.float32, rng=None, layout="NCHW", activation=None):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"Conv2d: kernel_size must be odd for 'same' padding, got {kernel_size}")
        if layout not in LAYOUTS:
            raise ValueError(f"Conv2d: layout must be one of {LAYOUTS}, got {layout!r}")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        if activation not in ACTIVATIONS:
            raise ValueError(f"Conv2d: activation must be one of {ACTIVATIONS}, got {activation!r}")
        self.layout, self.activation = layout, activation
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        w = init.zeros(shape, dtype) if zero_init else init.kaiming_uniform(shape, dtype, rng)
        self.weight = Parameter(new_array(w))
        self.bias = Parameter(new_array(init.zeros((out_channels,), dtype))) if bias else None

    def forward(self, x):
        if x.ndim != 4 or x.shape[CHANNEL_AXIS[self.layout]] != self.in_channels:
            expected = "(N, {c}, H, W)" if self.layout == "NCHW" else "({c}, N, H, W)"
            raise ValueError(f"Conv2d({self.in_channels}, {self.out_channels}, k={self.kernel_size}): expected input "
                             f"{expected.format(c=self.in_channels)} ({self.layout}), got shape {x.shape}")
        args = (x, self.weight) if self.bias is None else (x, self.weight, self.bias)
        return conv2d(*args, layout=self.layout, activation=self.activation)
