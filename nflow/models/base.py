"""What NICE, RealNVP and Glow share: a preprocessing flow, levels of flows with factor-out between them,
standard priors on the latents, and ``log_prob`` / ``encode`` / ``decode`` / ``sample`` built on that.

Multi-scale (RealNVP §3.6, Glow §3): after every level but the last, half of the channels leave as a latent
and the other half flow on. With x the [0, 1)-valued input, h₀ = preprocess(x), and levels f_1..f_L:

    log p(x) = log|det ∂h₀/∂x| + Σ_l log|det ∂f_l| + Σ_l log p_prior(z_l)

in nats per sample, for the density of the (already dequantized) input on [0, 1)^D.
"""
import math
import warnings

import numpy as np

from nflow.backend import array_module_for_backend, get_array_module, to_numpy
from nflow.flows.base import check_finite, leaf_layers
from nflow.flows.priors import PRIORS, sample_prior
from nflow.metrics import bits_per_dim
from nflow.nn.module import Module, ModuleList
from nflow.random import default_rng
from nflow.tensor import Tensor, no_grad


def require_count(owner, name, value, minimum=1):
    """``value`` as an int ≥ ``minimum`` (an architecture's number of levels, steps, channels); raises naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{owner}: {name} must be an integer ≥ {minimum}, got {value!r}")
    return int(value)


class FlowModel(Module):
    """Base of the models. Subclasses pass ``input_shape``, ``preprocess``, ``levels``, ``prior`` and
    ``input_range`` (None, or (low, high) for image models) to ``__init__``.

    The model is one sequence of flow layers (:meth:`flow_layers`: the preprocessing, then every level's layers),
    and every pass over it — log-density, encoding, decoding, memory-free backprop — is one of the two walks
    below: :meth:`forward_latents` from the input to the latents, :meth:`walk_back` from the latents to the input.
    A layer with ``factors_out`` (:class:`~nflow.flows.Split`) sends half of its output to the prior as a latent.
    """

    name = "flow"

    def __init__(self, input_shape, preprocess, levels, prior="gaussian", input_range=None, dtype=np.float32):
        super().__init__()
        if prior not in PRIORS:
            raise ValueError(f"{self.name}: prior must be one of {sorted(PRIORS)}, got {prior!r}")
        self.input_shape = tuple(input_shape)
        self.preprocess = preprocess
        self.levels = ModuleList(levels)
        self.prior = prior
        self.input_range = input_range
        self.dtype = np.dtype(dtype)
        # memory-free backprop keeps an exact copy of every M-th layer's input once it has seen drift (reversible.py)
        self.reversible_checkpoint_every = None

    # -- input checks -------------------------------------------------------------------------------
    def as_input(self, x):
        """``x`` (array or Tensor) as a Tensor this model accepts; raises naming what is wrong with it."""
        t = x if isinstance(x, Tensor) else Tensor(array_module_for_backend().asarray(x))
        if tuple(t.shape[1:]) != self.input_shape or t.ndim != len(self.input_shape) + 1:
            raise ValueError(f"{self.name}: expected input of shape (N, {', '.join(map(str, self.input_shape))}), "
                             f"got {tuple(t.shape)}")
        if t.shape[0] == 0:
            raise ValueError(f"{self.name}: the batch is empty (shape {tuple(t.shape)}); pass at least one sample")
        if t.dtype != self.dtype:
            raise TypeError(f"{self.name}: the model is {self.dtype}, the input is {t.dtype}; convert the input")
        check_finite(t, self.name)
        if self.input_range is not None:
            low, high = self.input_range
            xp = get_array_module(t.data)
            if bool((t.data < low).any()) or bool((t.data > high).any()):
                raise ValueError(f"{self.name}: input values must lie in [{low}, {high}] (dequantized images); "
                                 f"got min {float(xp.min(t.data)):.4g}, max {float(xp.max(t.data)):.4g}")
        return t

    # -- the walk -----------------------------------------------------------------------------------
    def flow_layers(self):
        """Every layer of the model in forward order, preprocessing first (nested sequences flattened)."""
        return leaf_layers(self.preprocess) + [layer for level in self.levels for layer in leaf_layers(level)]

    def forward_latents(self, x, before_layer=None, after_layer=None):
        """x (Tensor) -> (latents, logdet): the latents in the order they leave (the top one last) and the
        per-sample Σ log|det| of the whole map. ``before_layer(index, h)``, if given, sees every layer's input;
        ``after_layer(index, layer_logdet)`` every layer's own log-det (``nflow.inspect`` adds them up by level)."""
        h, logdet, latents = x, None, []
        for index, layer in enumerate(self.flow_layers()):
            if before_layer is not None:
                before_layer(index, h)
            h, layer_logdet = layer.forward(h)
            if after_layer is not None:
                after_layer(index, layer_logdet)
            logdet = layer_logdet if logdet is None else logdet + layer_logdet
            if layer.factors_out:
                h, z = layer.factor_out(h)
                latents.append(z)
        latents.append(h)
        return latents, logdet

    def walk_back(self, top, latents, step, factor_in):
        """The walk from the latents back to the input, each layer's ``step`` in reverse order.

        ``top`` is the state at the top (the last latent), ``latents`` the others in the order they left;
        ``step(index, layer, state)`` returns the state at the layer's input, and where a layer factored a
        latent out, ``factor_in(layer, state, latent)`` first puts it back. Returns the state at the input.
        """
        layers = self.flow_layers()
        remaining = list(latents)
        expected = sum(layer.factors_out for layer in layers)
        if len(remaining) != expected:
            raise ValueError(f"{self.name}: decode needs {expected + 1} latents, got {len(remaining) + 1}")
        state = top
        for index in reversed(range(len(layers))):
            layer = layers[index]
            if layer.factors_out:
                state = factor_in(layer, state, remaining.pop())
            state = step(index, layer, state)
        return state

    def inverse_latents(self, latents):
        """The inverse of :meth:`forward_latents` (its log-det is not needed by decode and is dropped)."""
        if len(latents) < 1:
            raise ValueError(f"{self.name}: decode needs at least one latent, got none")
        return self.walk_back(latents[-1], latents[:-1],
                              step=lambda index, layer, y: layer.inverse(y)[0],
                              factor_in=lambda layer, kept, z: layer.factor_in(kept, z))

    def latent_shapes(self):
        """The per-sample shape of each latent, found by pushing one mid-range input through the model once.

        The answer depends only on the input shape and the layers, so it is kept with them and worked out again
        only when either has changed (a layer replaced, added or removed). The probe is a whole forward pass at
        batch 1, which :meth:`sample` used to pay on every call: for NICE's 20 M weights 6.7 ms of a 32 ms
        ``sample(64)``, for Glow and RealNVP 10-12 ms (issue 12).
        """
        layers = tuple(self.flow_layers())
        kept = self.__dict__.get("_latent_shapes_of")
        if kept is not None and kept[0] == self.input_shape and len(kept[1]) == len(layers) \
                and all(a is b for a, b in zip(kept[1], layers)):
            return list(kept[2])
        shapes = self._probe_latent_shapes()
        # kept outside Module's registries (a plain attribute): not a parameter, buffer or submodule
        object.__setattr__(self, "_latent_shapes_of", (self.input_shape, layers, tuple(shapes)))
        return shapes

    def _probe_latent_shapes(self):
        """The latents' per-sample shapes, from one mid-range input pushed through the model in eval mode."""
        with no_grad():
            probe = Tensor(array_module_for_backend().full((1,) + self.input_shape, 0.5, dtype=self.dtype))
            was_training = self.training
            self.eval()
            try:
                latents, _ = self.forward_latents(probe)
            finally:
                self.train(was_training)
        return [tuple(z.shape[1:]) for z in latents]

    # -- the public API -----------------------------------------------------------------------------
    def log_prob(self, x):
        """log p(x) in nats per sample (a Tensor of shape (N,)); preprocessing's log-det included."""
        x = self.as_input(x)
        latents, logdet = self.forward_latents(x)
        prior = PRIORS[self.prior]
        for z in latents:
            logdet = logdet + prior(z)
        return logdet

    def encode(self, x):
        """x -> latents as arrays (a list for multi-scale models, one array otherwise)."""
        with no_grad():
            latents, _ = self.forward_latents(self.as_input(x))
        arrays = [z.data for z in latents]
        return arrays if len(arrays) > 1 else arrays[0]

    def decode(self, z):
        """Latents (as :meth:`encode` returns them) -> x as an array."""
        zs = z if isinstance(z, (list, tuple)) else [z]
        xp = array_module_for_backend()
        with no_grad():
            tensors = [t if isinstance(t, Tensor) else Tensor(xp.asarray(t, dtype=self.dtype)) for t in zs]
            for t in tensors:
                check_finite(t, f"{self.name}.decode")
            return self.inverse_latents(tensors).data

    def sample(self, n, temperature=1.0, seed=None):
        """n samples at ``temperature`` (latents drawn from the prior scaled by T; T = 0 gives its mode)."""
        return self._sample(n, temperature, seed)

    def _sample(self, n, temperature, seed, move_latents=None):
        """:meth:`sample`; ``move_latents(latents)``, if given, maps the prior's draws (host arrays, already scaled
        by T) to the latents decoded (a class-conditional prior moves the top one)."""
        n = require_count(f"{self.name}.sample", "n", n)
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.floating, np.integer)) \
                or not math.isfinite(temperature) or temperature < 0:
            raise ValueError(f"{self.name}.sample: temperature must be a finite number ≥ 0, got {temperature!r}")
        rng = np.random.default_rng(seed) if seed is not None else default_rng()
        was_training = self.training
        self.eval()
        try:
            latents = [sample_prior(self.prior, (n,) + shape, rng, temperature).astype(self.dtype)
                       for shape in self.latent_shapes()]
            if move_latents is not None:
                latents = [z.astype(self.dtype) for z in move_latents(latents)]
            with np.errstate(over="ignore", invalid="ignore"):  # reported below, with the count
                x = self.decode(latents)
            bad = int((~get_array_module(x).isfinite(x)).reshape(n, -1).any(axis=1).sum())
            if bad:
                warnings.warn(f"{self.name}.sample: {bad} of {n} samples hold NaN or inf (the inverse overflowed "
                              f"at temperature {temperature}; an under-trained model, or try a lower temperature)",
                              RuntimeWarning, stacklevel=3)
            return x
        finally:
            self.train(was_training)

    def bits_per_dim(self, x, n_bins=256):
        """Mean bits per dimension of a batch (a float): -log p / (D ln 2) + log2(n_bins) (``nflow.metrics``)."""
        with no_grad():
            log_prob = to_numpy(self.log_prob(x).data).astype(np.float64)
        return float(np.mean(bits_per_dim(log_prob, self.input_shape, n_bins)))
