"""Weight initialisers. Each returns a host NumPy array drawn from ``rng`` (default: nflow's generator).

Glorot & Bengio (2010): ``xavier_uniform`` keeps activation variance through a linear map in both
directions, bound sqrt(6 / (fan_in + fan_out)). He et al. (2015): ``kaiming_uniform`` keeps it through
ReLUs, bound sqrt(6 / fan_in).
"""
import numpy as np

from nflow.random import default_rng


def fans(shape):
    """(fan_in, fan_out) of a Linear weight (out, in) or a conv weight (out, in, k, k)."""
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def xavier_uniform(shape, dtype=np.float32, rng=None):
    fan_in, fan_out = fans(shape)
    bound = np.sqrt(6.0 / (fan_in + fan_out))
    return (rng or default_rng()).uniform(-bound, bound, size=shape).astype(dtype)


def kaiming_uniform(shape, dtype=np.float32, rng=None):
    fan_in, _ = fans(shape)
    bound = np.sqrt(6.0 / fan_in)
    return (rng or default_rng()).uniform(-bound, bound, size=shape).astype(dtype)


def normal(shape, std, dtype=np.float32, rng=None):
    return ((rng or default_rng()).standard_normal(size=shape) * std).astype(dtype)


def zeros(shape, dtype=np.float32):
    return np.zeros(shape, dtype=dtype)


def ones(shape, dtype=np.float32):
    return np.ones(shape, dtype=dtype)


