"""Volume-preserving rearrangements: squeeze, reverse and fixed random shuffle (log-det 0)."""
import numpy as np

import nflow.functional as F
from nflow.flows.base import Flow, check_input, zero_logdet
from nflow.flows.squeeze_nodes import squeeze, unsqueeze
from nflow.nn.module import new_array
from nflow.random import default_rng


class Squeeze(Flow):
    """C×H×W -> 4C×H/2×W/2 (RealNVP §3.6; Glow): each 2×2 spatial block becomes 4 channels.

    Channel order of the output: c·4 + 2·di + dj for input channel c and block offset (di, dj), i.e.
    ``x.reshape(N, C, H/2, 2, W/2, 2).transpose(0, 1, 3, 5, 2, 4)`` as in Glow's ``squeeze2d``. One kernel pass
    each way (``nflow/flows/squeeze_nodes.py``; the twin is ``kernels/reference/squeeze.py``).
    """

    FACTOR = 2

    def forward(self, x):
        check_input(x, "Squeeze", expected_ndim=4)
        h, w = x.shape[2:]
        if h % self.FACTOR or w % self.FACTOR:
            raise ValueError(f"Squeeze: spatial size must be even to fold 2x2 blocks into channels, "
                             f"got input of shape {x.shape} (H={h}, W={w})")
        return squeeze(x), zero_logdet(x)

    def inverse(self, y):
        check_input(y, "Squeeze.inverse", expected_ndim=4)
        if y.shape[1] % 4:
            raise ValueError(f"Squeeze.inverse: channels must be a multiple of 4, got input of shape {y.shape}")
        return unsqueeze(y), zero_logdet(y)


class _ChannelPermutation(Flow):
    """y = x[:, perm] along axis 1; the inverse applies the inverse permutation."""

    def __init__(self, perm):
        super().__init__()
        perm = np.asarray(perm, dtype=np.int64)
        self.channels = len(perm)
        self.register_buffer("perm", new_array(perm))
        self.register_buffer("inverse_perm", new_array(np.argsort(perm)))

    def forward(self, x):
        check_input(x, type(self).__name__, channels=self.channels)
        return x[:, self.perm], zero_logdet(x)

    def inverse(self, y):
        check_input(y, type(self).__name__, channels=self.channels)
        return y[:, self.inverse_perm], zero_logdet(y)


class Reverse(_ChannelPermutation):
    """Reverse the channel (feature) order (Glow's 'reverse' permutation; NICE/RealNVP alternation)."""

    def __init__(self, channels):
        super().__init__(np.arange(channels)[::-1].copy())


class Shuffle(_ChannelPermutation):
    """A fixed random permutation of the channels, drawn once and saved in the state dict (Glow's 'shuffle')."""

    def __init__(self, channels, rng=None):
        super().__init__((rng or default_rng()).permutation(channels))


class Flatten(Flow):
    """(N, *shape) -> (N, prod(shape)); volume-preserving. Lets vector flows (NICE) take images."""

    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(shape)
        self.features = int(np.prod(self.shape))

    def forward(self, x):
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"Flatten: expected input of shape (N, {', '.join(map(str, self.shape))}), got {x.shape}")
        return F.reshape(x, (x.shape[0], self.features)), zero_logdet(x)

    def inverse(self, y):
        check_input(y, "Flatten.inverse", expected_ndim=2, channels=self.features)
        return F.reshape(y, (y.shape[0],) + self.shape), zero_logdet(y)
