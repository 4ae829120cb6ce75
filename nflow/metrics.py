"""Bits per dimension: the unit flow papers report likelihoods of images in.

A flow gives the density p(x) of dequantized data x ∈ [0, 1)^D. The 8-bit images behind it live on a grid
of bins of width 1/n_bins, so the probability of one discrete image is about p(x) · n_bins^(-D), and its
code length in bits per dimension is

    bpd = -(log p(x) - D ln n_bins) / (D ln 2) = -log p(x) / (D ln 2) + log2(n_bins)

(Theis, van den Oord & Bethge 2016, §3.1; Dinh et al. 2017, §5). With ``n_bins=1`` the offset vanishes and
the result is the bits per dimension of the continuous density itself (for toy 2-D data).
"""
import math

import numpy as np


def n_dims(shape):
    """D, the number of dimensions of one sample: ``shape`` is that sample's shape (e.g. (1, 28, 28)) or D."""
    if isinstance(shape, (int, np.integer)):
        d = int(shape)
    else:
        d = int(np.prod(tuple(shape), dtype=np.int64))
    if d <= 0:
        raise ValueError(f"bits_per_dim: a sample of shape {shape} has {d} dimensions; need at least one")
    return d


def bits_per_dim(log_prob, shape, n_bins=256):
    """``-log_prob / (D ln 2) + log2(n_bins)`` with D = the number of dimensions of ONE sample.

    ``log_prob``: log-density in nats, per sample: a float, a NumPy/CuPy array, or an nflow Tensor (the
    result is then a Tensor in the same graph, so it can serve as a loss). ``shape``: the shape of one sample
    without the batch axis, e.g. ``(1, 28, 28)`` for MNIST (D = 784), or D itself. ``n_bins``: the number of
    quantisation levels per dimension of the original data (256 for 8-bit images; 1 for continuous data).
    """
    if n_bins < 1:
        raise ValueError(f"bits_per_dim: n_bins must be at least 1, got {n_bins}")
    d = n_dims(shape)
    return log_prob * (-1.0 / (d * math.log(2.0))) + math.log2(n_bins)
