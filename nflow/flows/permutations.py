"""Volume-preserving rearrangements (log-det 0): reverse and fixed random shuffle of the channels, flatten.

(Squeeze, the spatial rearrangement, has a kernel and its own file, ``squeeze.py``.)
"""
import numpy as np

import nflow.functional as F
from nflow.backend import to_numpy
from nflow.flows.base import Flow, check_input, zero_logdet
from nflow.nn.module import new_array
from nflow.random import default_rng


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

    def _after_load_state(self):
        """A loaded ``perm`` must be a permutation of 0..C-1 and ``inverse_perm`` its inverse: anything else is
        not a bijection (a repeated channel) or silently inverts to the wrong order."""
        perm, inverse = np.asarray(to_numpy(self.perm)), np.asarray(to_numpy(self.inverse_perm))
        if not np.array_equal(np.sort(perm), np.arange(self.channels)):
            raise ValueError(f"{type(self).__name__}: the loaded perm {perm.tolist()} is not a permutation of "
                             f"0..{self.channels - 1}")
        if not np.array_equal(inverse, np.argsort(perm)):
            raise ValueError(f"{type(self).__name__}: the loaded inverse_perm {inverse.tolist()} is not the inverse "
                             f"of perm {perm.tolist()}")


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
