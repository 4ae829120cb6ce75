"""Glow's activation normalisation (Kingma & Dhariwal 2018, §3.1, Table 1): a per-channel affine map

    y = (x + b) · exp(log_s),    log|det ∂y/∂x| = P · Σ_c log_s[c]      (P = pixels per channel, H·W)

with a data-dependent start. The layer, then the graph nodes of its fused kernel (family ``actnorm``; equations
and gradients in the NumPy twin ``kernels/reference/actnorm.py``).
"""
import numpy as np

from nflow.backend import get_array_module
from nflow.distributed.context import current as current_communicator
from nflow.flows.base import Flow, check_input
from nflow.nn import init
from nflow.nn.module import Parameter, new_array
from nflow.ops.kernel_function import KernelFunction
from nflow.tensor import no_grad

ACTNORM_EPS = 1e-6  # added to the init batch's std so a constant channel does not give log(0)


class ActNorm(Flow):
    """Glow's activation normalisation (Kingma & Dhariwal 2018, §3.1): y = (x + b) · exp(log_s) per channel,
    log|det| = H·W·Σ log_s.

    Data-dependent initialisation: the first forward pass in training mode sets b = -mean and
    log_s = -log(std + ε) per channel over that batch, so the output has zero mean and unit variance.
    The ``initialised`` flag is a buffer in the state dict: loading a checkpoint never re-initialises.
    """

    def __init__(self, channels, dtype=np.float32):
        super().__init__()
        self.channels = channels
        self.bias = Parameter(new_array(init.zeros((channels,), dtype)))
        self.log_scale = Parameter(new_array(init.zeros((channels,), dtype)))
        self.register_buffer("initialised", new_array(np.zeros((), dtype=np.int8)))

    def _initialise(self, x):
        """b = -mean, log_s = -log(std + ε) per channel over the *global* batch: the statistics are summed over
        the ranks of the current communicator (:func:`nflow.distributed.current`; the group of one outside a
        distributed run), in float64 — first Σx and the count, giving the global mean, then Σ(x - mean)²
        around that mean (two passes, as ``numpy.std`` does; one process computes exactly what it always did).
        So N ranks with batch B start from the statistics one process with batch N·B would see."""
        xp = get_array_module(x.data)
        comm = current_communicator()
        axes = (0,) + tuple(range(2, x.ndim))
        data = x.data.astype(np.float64)
        count = data.size // self.channels
        sums = xp.asarray(comm.allreduce_sum(xp.concatenate([data.sum(axis=axes), xp.asarray([float(count)])])))
        total = sums[-1]
        mean = sums[:-1] / total
        shape = (1, self.channels) + (1,) * (x.ndim - 2)
        deviation = data - mean.reshape(shape)
        std = xp.sqrt(xp.asarray(comm.allreduce_sum((deviation * deviation).sum(axis=axes))) / total)
        self.bias.data[...] = (-mean).astype(x.dtype)
        self.log_scale.data[...] = (-xp.log(std + ACTNORM_EPS)).astype(x.dtype)
        self.initialised = xp.ones((), dtype=np.int8)

    def _after_load_state(self):
        """The loaded ``initialised`` flag is 0 (initialise from the next batch) or 1; nothing else has a meaning."""
        if int(self.initialised) not in (0, 1):
            raise ValueError(f"ActNorm: the loaded 'initialised' flag is {int(self.initialised)}; it must be 0 or 1")

    def forward(self, x):
        check_input(x, "ActNorm", expected_ndim=(2, 4), channels=self.channels)
        if not int(self.initialised) and self.training:
            with no_grad():
                self._initialise(x)
        return actnorm_forward(x, self.bias, self.log_scale)

    def inverse(self, y):
        check_input(y, "ActNorm", expected_ndim=(2, 4), channels=self.channels)
        return actnorm_inverse(y, self.bias, self.log_scale)


# ----------------------------------------------------------------------------------------- graph nodes
class ActNormForward(KernelFunction):
    """(x, b, log_s) -> ((x + b)·exp(log_s), P·Σ log_s). Keeps: x, b, log_s."""

    family = "actnorm"

    def forward(self, x, bias, log_s):
        self.saved = (x, bias, log_s)
        return self.kernel.forward(x, bias, log_s)

    def backward(self, gy, glogdet):
        x, bias, log_s = self.saved
        return self.kernel.forward_backward(x, bias, log_s, gy, glogdet)


class ActNormInverse(KernelFunction):
    """(y, b, log_s) -> (y·exp(-log_s) - b, -P·Σ log_s). Keeps: y, b, log_s."""

    family = "actnorm"

    def forward(self, y, bias, log_s):
        self.saved = (y, bias, log_s)
        return self.kernel.inverse(y, bias, log_s)

    def backward(self, gx, glogdet):
        y, bias, log_s = self.saved
        return self.kernel.inverse_backward(y, bias, log_s, gx, glogdet)


def actnorm_forward(x, bias, log_s):
    return ActNormForward()(x, bias, log_s)


def actnorm_inverse(y, bias, log_s):
    return ActNormInverse()(y, bias, log_s)
