"""The flow contract and composition.

Every flow layer maps a batch both ways (nflows ``transforms/base.py``; FrEIA's sign rule):

    forward(x) -> (y, logdet)    logdet[n] = log |det ∂y_n/∂x_n|,            shape (N,)
    inverse(y) -> (x, logdet)    logdet[n] = log |det ∂x_n/∂y_n| = -forward's at the matching point

``logdet`` is always a Tensor of shape (N,), never None; composites add their layers' log-dets.
"""

from nflow.backend import get_array_module
from nflow.nn.module import Module, ModuleList
from nflow.tensor import Tensor, enable_grad, no_grad


class Flow(Module):
    """Base class of invertible layers. Subclasses implement ``forward`` and ``inverse``.

    Two facts a model's walk reads off a layer (:meth:`nflow.models.FlowModel.flow_layers`):
    ``factors_out``, whether half of the output's channels leave as a latent after it (:class:`~nflow.flows.Split`);
    ``invertible_in_training``, whether its inverse rebuilds the input in training mode too (false for a layer
    that normalises with the batch's own statistics), which memory-free backprop needs.
    """

    factors_out = False
    invertible_in_training = True

    def forward(self, x):
        raise NotImplementedError

    def inverse(self, y):
        raise NotImplementedError(f"{type(self).__name__} does not define inverse")

    def backward_from_output(self, y, gy, glogdet):
        """Memory-free backprop through this layer, given only its output (see :mod:`nflow.reversible`).

        Rebuilds the input x = f⁻¹(y) without a graph, re-runs ``forward`` on it with a graph, and
        back-propagates gy = ∂L/∂y and glogdet = ∂L/∂logdet. Parameter gradients accumulate as usual.
        Returns (x, ∂L/∂x) as arrays. Layers that can share work between the rebuild and the re-run
        (couplings: the network sees the same input both ways) override this.
        """
        with no_grad():
            x, _ = self.inverse(Tensor(y))
        x_leaf = Tensor(x.data, requires_grad=True)
        with enable_grad():
            y_again, logdet = self.forward(x_leaf)
            seed_backward([(y_again, gy), (logdet, glogdet)])
        return x.data, x_leaf.grad



class FlowSequence(Flow):
    """Layers applied in order; log-dets add. ``inverse`` runs the layers backwards."""

    def __init__(self, layers):
        super().__init__()
        self.layers = ModuleList(layers)

    def forward(self, x):
        total = zero_logdet(x)
        for layer in self.layers:
            x, logdet = layer.forward(x)
            total = total + logdet
        return x, total

    def inverse(self, y):
        total = zero_logdet(y)
        for layer in reversed(list(self.layers)):
            y, logdet = layer.inverse(y)
            total = total + logdet
        return y, total

    def __iter__(self):
        return iter(self.layers)

    def __len__(self):
        return len(self.layers)


def leaf_layers(flow):
    """The layers of a (possibly nested) FlowSequence that are not themselves sequences, in forward order."""
    if isinstance(flow, FlowSequence):
        return [leaf for layer in flow.layers for leaf in leaf_layers(layer)]
    return [flow]


def seed_backward(pairs):
    """Back-propagate several outputs at once: Σ_k <t_k, g_k> has gradient g_k with respect to each t_k."""
    import nflow.functional as F
    total = None
    for t, g in pairs:
        if t.requires_grad:
            term = F.sum(t * Tensor(g))
            total = term if total is None else total + term
    if total is not None:
        total.backward()


def zero_logdet(x):
    """A zero log-det of shape (N,) on ``x``'s device and dtype."""
    xp = get_array_module(x.data)
    return Tensor(xp.zeros((x.shape[0],), dtype=x.dtype))


def check_input(x, layer, expected_ndim=None, channels=None):
    """Raise a ValueError naming ``layer`` when ``x`` has the wrong rank or channel count."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{layer}: expects an nflow Tensor, got {type(x).__name__}")
    if expected_ndim is not None and x.ndim not in (expected_ndim if isinstance(expected_ndim, tuple)
                                                    else (expected_ndim,)):
        raise ValueError(f"{layer}: expected a {expected_ndim}-D input, got shape {x.shape}")
    if channels is not None and (x.ndim < 2 or x.shape[1] != channels):
        raise ValueError(f"{layer}: expected {channels} channels on axis 1, got shape {x.shape}")


def check_finite(x, where):
    """Stop with a message when an input holds NaN or inf; nflow never propagates them silently."""
    data = x.data if isinstance(x, Tensor) else x
    xp = get_array_module(data)
    if not bool(xp.isfinite(data).all()):
        bad = int((~xp.isfinite(data)).sum())
        raise FloatingPointError(f"{where}: input holds {bad} non-finite value(s) (NaN or inf) "
                                 f"in an array of shape {tuple(data.shape)}")


def channel_split_sizes(channels, layer):
    """(C_a, C_b) for a coupling that conditions on the first C_a channels and transforms the last C_b."""
    if channels < 2:
        raise ValueError(f"{layer}: needs at least 2 channels (or features) on axis 1 to split, got {channels}")
    return channels // 2, channels - channels // 2
