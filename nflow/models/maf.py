"""MAF (Papamakarios, Pavlakou & Murray 2017) and IAF (Kingma et al. 2016): stacks of affine autoregressive
layers with MADE conditioners (``nflow/flows/autoregressive.py``, ``nflow/flows/made.py``).

    MAF: log p(x) in one MADE pass per layer; sampling in D passes per layer.
    IAF: sampling in one MADE pass per layer; log p(x) in D passes per layer (slow for large D: 784 on MNIST).

Between layers the variables' order changes, so that every variable gets to condition on every other one
somewhere in the stack: ``order="reverse"`` alternates natural and reversed orders (layer 0 natural, layer 1
reversed, ...; the MAF paper reverses the order between MADEs), ``"random"`` gives layer l a random order drawn
from ``order_seed + l``, ``"natural"`` keeps the natural order in every layer. The order lives in each MADE's
degrees; there is no separate permutation layer. ``batch_norm=True`` puts a batch-norm flow
(:class:`~nflow.flows.BatchNormFlow`, RealNVP §3.7) after every autoregressive layer, as the MAF paper does.

Vectors, ``input_shape=(D,)`` (the 2-D toy densities): the layers act on x directly, no preprocessing.
Images, ``input_shape=(C, H, W)`` with values in [0, 1): as in the MAF paper's MNIST experiments, the dequantized pixels go
through the logit transform p = λ + (1 - 2λ)x, logit(p) with λ = 1e-6 (``logit_alpha``; nflow's
:class:`~nflow.flows.Logit` defaults to RealNVP's 0.05), then are flattened to D = C·H·W. The log-density and
bits/dim are of the pixel values in [0, 1), the logit's log-det included.
"""
import numpy as np

from nflow.flows.autoregressive import IAFLayer, MAFLayer
from nflow.flows.base import FlowSequence
from nflow.flows.normalization import BatchNormFlow
from nflow.flows.permutations import Flatten
from nflow.flows.preprocess import Logit
from nflow.models.base import FlowModel, require_count

MAF_LOGIT_ALPHA = 1e-6  # λ of the MAF paper's logit preprocessing of MNIST
LAYER_ORDERS = ("reverse", "random", "natural")


def layer_order(order, index, order_seed):
    """(MADE order, seed) of layer ``index`` for the model's ``order`` option (see the module docstring)."""
    if order == "reverse":
        return ("natural" if index % 2 == 0 else "reversed"), None
    if order == "random":
        return "random", order_seed + index
    return "natural", None


DEFAULT_DEPTH = 2   # hidden layers per MADE when ``hidden`` is one width


def hidden_widths(name, hidden, depth):
    """The MADE's hidden widths: ``hidden`` as a sequence of widths (``hidden=(64, 64)``, ``depth`` then None or
    its length), or one width repeated ``depth`` times (``hidden=64, depth=2``, the CLI's --hidden/--depth)."""
    if isinstance(hidden, (list, tuple)):
        widths = tuple(hidden)
        if not widths:
            raise ValueError(f"{name}: hidden must hold at least one width, got {hidden!r}")
        if depth is not None and depth != len(widths):
            raise ValueError(f"{name}: hidden={hidden!r} gives {len(widths)} hidden layers, but depth={depth!r}; "
                             "give one of them")
    else:
        widths = (hidden,) * require_count(name, "depth", DEFAULT_DEPTH if depth is None else depth)
    for width in widths:
        require_count(name, "every hidden width", width)
    return tuple(int(w) for w in widths)


class _AutoregressiveModel(FlowModel):
    """A stack of ``layers`` autoregressive layers of class ``layer_class``, each with a MADE whose hidden layers
    have the widths ``hidden`` (a sequence, such as (64, 64)), or ``depth`` layers of ``hidden`` units."""

    layer_class = None

    def __init__(self, input_shape=(2,), layers=5, hidden=64, depth=None, order="reverse", order_seed=0,
                 batch_norm=False, logit_alpha=MAF_LOGIT_ALPHA, dtype=np.float32):
        name = self.name
        if isinstance(input_shape, (int, np.integer)) and not isinstance(input_shape, bool):
            input_shape = (int(input_shape),)  # MAF(dim): a vector model
        input_shape = tuple(input_shape)
        if len(input_shape) not in (1, 3):
            raise ValueError(f"{name}: input_shape must be (D,) or (C, H, W), got {input_shape}")
        require_count(name, "every axis of input_shape", min(input_shape))
        require_count(name, "layers", layers)
        widths = hidden_widths(name, hidden, depth)
        require_count(name, "order_seed", order_seed, minimum=0)
        if order not in LAYER_ORDERS:
            raise ValueError(f"{name}: order must be one of {LAYER_ORDERS}, got {order!r}")
        features = int(np.prod(input_shape))
        flows = []
        for index in range(layers):
            made_order, seed = layer_order(order, index, order_seed)
            flows.append(self.layer_class(features, widths, order=made_order, seed=seed, dtype=dtype))
            if batch_norm:
                flows.append(BatchNormFlow(features, dtype=dtype))
        if len(input_shape) == 1:
            preprocess, input_range = FlowSequence([]), None
        else:
            preprocess, input_range = FlowSequence([Logit(logit_alpha), Flatten(input_shape)]), (0.0, 1.0)
        super().__init__(input_shape, preprocess, [FlowSequence(flows)], input_range=input_range, dtype=dtype)
        self.config = dict(model=name.lower(), input_shape=list(input_shape), layers=layers, hidden=list(widths),
                           order=order, order_seed=order_seed, batch_norm=batch_norm,
                           logit_alpha=logit_alpha)


class MAF(_AutoregressiveModel):
    """Masked autoregressive flow: density in one pass per layer, sampling in D passes per layer."""

    name = "MAF"
    layer_class = MAFLayer


class IAF(_AutoregressiveModel):
    """Inverse autoregressive flow: sampling in one pass per layer, density in D passes per layer."""

    name = "IAF"
    layer_class = IAFLayer


__all__ = ["MAF", "IAF"]
