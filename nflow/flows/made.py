"""MADE, the masked autoencoder for distribution estimation (Germain, Gregor, Murray & Larochelle 2015).

An MLP whose weight matrices are multiplied by fixed binary masks so that output i depends only on the inputs
that come before i in a chosen order: the network is *autoregressive*. MAF and IAF (``autoregressive.py``) use
it as the conditioner of an affine autoregressive transform.

Degrees (§4 of the paper). Every unit k gets a degree m(k):

- inputs: m(i) = the position of input i in the order, a permutation of 1..D
  (``order="natural"``: 1, 2, ..., D; ``"reversed"``: D, ..., 2, 1; ``"random"``: a permutation drawn from ``seed``);
- hidden units of layer l, k = 0..H_l-1: m(k) = 1 + (k mod max(D - 1, 1)), cycling through 1..D-1, so that
  every degree the outputs may use is present in every layer when H_l ≥ D - 1 (the paper draws them at random
  in [min m_previous, D-1]; the cyclic choice is deterministic and spreads the units evenly);
- outputs: the degree of the input they predict.

Masks, with rows indexing the layer's outputs and columns its inputs:

    hidden layers:  M[k, j] = [m_out(k) ≥ m_in(j)]
    output layer:   M[k, j] = [m_out(k) > m_in(j)]     (strict: output i must not see input i itself)

Then a path from input j to output i exists only if m(j) < m(i): ∂out_i/∂in_j = 0 unless input j comes before
input i in the order. The outputs with degree 1 depend on no input (only on the biases).

Here MADE outputs two numbers per input dimension, (μ_i, a_i): a shift and an unconstrained log-scale term,
as two (N, D) tensors. The output layer starts at zero, so a fresh MADE outputs μ = a = 0 and the flow built on
it starts at the identity (as nflow's coupling networks do). Cost: one pass, O(N · Σ_l H_{l-1} H_l).
"""
import numpy as np

import nflow.functional as F
from nflow.backend import to_numpy
from nflow.nn import init
from nflow.nn.module import Module, ModuleList, Parameter, new_array
from nflow.ops.linalg import matmul
from nflow.tensor import Tensor

ORDERS = ("natural", "reversed", "random")


def input_degrees(features, order="natural", seed=None):
    """The degrees m(i) ∈ 1..D of the D inputs (an int64 array) for ``order`` (see the module docstring)."""
    if order not in ORDERS:
        raise ValueError(f"MADE: order must be one of {ORDERS}, got {order!r}")
    if order == "random" and seed is None:
        raise ValueError("MADE: order='random' needs a seed (the order is part of the model and must be repeatable)")
    natural = np.arange(1, features + 1, dtype=np.int64)
    if order == "natural":
        return natural
    if order == "reversed":
        return natural[::-1].copy()
    return np.random.default_rng(seed).permutation(natural)


def hidden_degrees(features, width):
    """Degrees of a hidden layer of ``width`` units: 1 + (k mod max(D - 1, 1)), cycling through 1..D-1."""
    return 1 + np.arange(width, dtype=np.int64) % max(features - 1, 1)


def hidden_mask(degrees_out, degrees_in):
    """M[k, j] = [m_out(k) ≥ m_in(j)], shape (len(out), len(in))."""
    return (degrees_out[:, None] >= degrees_in[None, :])


def output_mask(degrees_out, degrees_in):
    """M[k, j] = [m_out(k) > m_in(j)]: strict, so an output never sees its own input."""
    return (degrees_out[:, None] > degrees_in[None, :])


def made_masks(features, degrees, widths):
    """The masks of a MADE with input degrees ``degrees`` and hidden layers of ``widths``, in layer order: one per
    hidden layer, then the output layer's, whose 2D rows are μ_1..μ_D then a_1..a_D (each with its input's degree)."""
    masks, previous = [], degrees
    for width in widths:
        current = hidden_degrees(features, width)
        masks.append(hidden_mask(current, previous))
        previous = current
    masks.append(output_mask(np.concatenate([degrees, degrees]), previous))
    return masks


class MaskedLinear(Module):
    """y = x (M ⊙ W)ᵀ + b with a fixed binary mask M (a buffer, saved in the state dict).

    The mask multiplies the weight inside the graph, so ∂L/∂W = M ⊙ (gradient of the dense layer): masked weights
    get exactly zero gradient and stay whatever they are, without ever reaching the output.
    """

    def __init__(self, mask, zero_init=False, dtype=np.float32, rng=None):
        super().__init__()
        mask = np.asarray(mask)
        if mask.ndim != 2:
            raise ValueError(f"MaskedLinear: the mask must be 2-D (out_features, in_features), got shape {mask.shape}")
        self.out_features, self.in_features = mask.shape
        w = init.zeros(mask.shape, dtype) if zero_init else init.xavier_uniform(mask.shape, dtype, rng)
        self.weight = Parameter(new_array(w))
        self.bias = Parameter(new_array(init.zeros((self.out_features,), dtype)))
        self.register_buffer("mask", new_array(mask.astype(dtype)))

    def forward(self, x):
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"MaskedLinear({self.in_features}, {self.out_features}): expected input "
                             f"(N, {self.in_features}), got shape {x.shape}")
        return matmul(x, (self.weight * Tensor(self.mask)).T) + self.bias


class MADE(Module):
    """x (N, D) -> (μ, a), each (N, D), with μ_i and a_i functions of the inputs before i in the order only.

    ``hidden``: the widths of the hidden layers (ReLU), e.g. (64, 64); ``order``: "natural", "reversed" or
    "random" (with ``seed``). ``degrees`` holds the input degrees m(i) (a buffer, so a checkpoint keeps the order).
    """

    def __init__(self, features, hidden=(64, 64), order="natural", seed=None, dtype=np.float32):
        super().__init__()
        if isinstance(features, bool) or not isinstance(features, (int, np.integer)) or features < 1:
            raise ValueError(f"MADE: features must be an integer ≥ 1, got {features!r}")
        hidden = tuple(hidden)
        if not hidden or any(isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1 for h in hidden):
            raise ValueError(f"MADE: hidden must be a non-empty sequence of widths ≥ 1, got {hidden!r}")
        self.features, self.hidden_sizes, self.order = int(features), hidden, order
        degrees = input_degrees(self.features, order, seed)
        self.register_buffer("degrees", new_array(degrees))
        *hidden_masks, out_mask = made_masks(self.features, degrees, hidden)
        self.hidden = ModuleList([MaskedLinear(mask, dtype=dtype) for mask in hidden_masks])
        self.out = MaskedLinear(out_mask, zero_init=True, dtype=dtype)

    def forward(self, x):
        h = x
        for layer in self.hidden:
            h = F.relu(layer(h))
        mu, a = F.split(self.out(h), 2, axis=1)
        return mu, a

    def _after_load_state(self):
        """The loaded ``degrees`` must be a permutation of 1..D and the loaded masks exactly the ones they give:
        any other mask breaks the autoregressive property, and with it the inverse and the log-det."""
        degrees = np.asarray(to_numpy(self.degrees))
        if not np.array_equal(np.sort(degrees), np.arange(1, self.features + 1)):
            raise ValueError(f"MADE: the loaded degrees {degrees.tolist()} are not a permutation of 1..{self.features}")
        layers = list(self.hidden) + [self.out]
        for index, (layer, expected) in enumerate(zip(layers, made_masks(self.features, degrees, self.hidden_sizes))):
            if not np.array_equal(np.asarray(to_numpy(layer.mask)) != 0, expected):
                raise ValueError(f"MADE: the loaded mask of layer {index} is not the mask its degrees give "
                                 f"(order {degrees.tolist()}); the network would not be autoregressive")
