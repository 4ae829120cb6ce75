"""A whole model (NICE, RealNVP, Glow: any :class:`~nflow.models.FlowModel`) seen as one flow layer, so the kit's
properties apply to it unchanged.

forward(x) = (every latent flattened and concatenated per sample, in the order they leave; the log-det of the
model's whole map from x to the latents), by the model's own walk (``forward_latents``). inverse(y) splits y back
into latents and walks back (``walk_back``) through each layer's ``inverse``, adding their log-dets.
``backward_from_output`` walks back through each layer's ``backward_from_output``, as training with
``--reversible`` does. The prior is not part of the map: log p(x) = Σ log p_prior(latents) + logdet.
"""
import numpy as np

import nflow.functional as F
from nflow.flows.base import Flow
from nflow.tensor import Tensor, no_grad


class ModelFlow(Flow):
    """``model`` as one flow R^D -> R^D (D = the model's input size); see the module docstring."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.latent_shapes = [tuple(s) for s in model.latent_shapes()]
        self.latent_sizes = [int(np.prod(s)) for s in self.latent_shapes]

    def __repr__(self):
        return f"{type(self.model).__name__}{self.model.input_shape} (as one flow to its concatenated latents)"

    def forward(self, x):
        # the walk itself, not log_prob's input checks: a round trip may come back a rounding error outside [0, 1]
        latents, logdet = self.model.forward_latents(x)
        n = x.shape[0]
        return F.concat([F.reshape(z, (n, -1)) for z in latents], axis=1), logdet

    def _latents(self, y):
        """(N, D) -> the latents as Tensors of their own shapes."""
        n = y.shape[0]
        pieces = F.split(y, list(np.cumsum(self.latent_sizes)[:-1]), axis=1) if len(self.latent_sizes) > 1 else [y]
        return [F.reshape(p, (n,) + s) for p, s in zip(pieces, self.latent_shapes)]

    def inverse(self, y):
        latents = self._latents(y)
        total = []

        def step(index, layer, h):
            x, logdet = layer.inverse(h)
            total.append(logdet)
            return x

        x = self.model.walk_back(latents[-1], latents[:-1], step,
                                 factor_in=lambda layer, kept, z: layer.factor_in(kept, z))
        logdet = total[0]
        for term in total[1:]:
            logdet = logdet + term
        return x, logdet

    def backward_from_output(self, y, gy, glogdet):
        """Memory-free backprop through every layer in turn (each layer's ``backward_from_output``)."""
        with no_grad():
            zs = [z.data for z in self._latents(Tensor(y))]
            gzs = [g.data for g in self._latents(Tensor(gy))]
        pairs = list(zip(zs, gzs))

        def step(index, layer, state):
            return layer.backward_from_output(state[0], state[1], glogdet)

        def factor_in(layer, state, latent):
            with no_grad():
                return tuple(layer.factor_in(Tensor(a), Tensor(b)).data for a, b in zip(state, latent))

        return self.model.walk_back(pairs[-1], pairs[:-1], step, factor_in)
