"""Where the bits go: a trained flow's held-out negative log-likelihood, taken apart term by term.

For x the dequantized input, h₀ = preprocess(x), levels f_1..f_L and latents z_l (RealNVP §3.6, Glow §3):

    -log p(x) = -log|det ∂h₀/∂x| - Σ_l Σ_{layers k of f_l} log|det J_k| - Σ_l log p_prior(z_l)

:func:`decompose` measures every term over a data set, on exactly the inputs :func:`nflow.train.evaluate` uses
(the same batches and dequantization noise, ``eval_batches``), so the terms add up to the NLL ``nflow eval``
reports. Each term is also given in bits per dimension, term / (D ln 2); with n_bins quantisation levels the
discretisation adds log₂ n_bins (8 for 8-bit pixels) to the total. Beside the terms: every layer's mean log-det and
its spread over the data, its parameter count and, for a 1x1 convolution, the condition number of W (a rising
one is how Glow training goes wrong); every latent's mean, standard deviation and the fraction of its entries
beyond ±3σ of the prior, against the prior's own fraction.
"""
import math
from dataclasses import asdict, dataclass, field

import numpy as np

import nflow
from nflow.backend import to_numpy
from nflow.data.dequantize import default_n_bins
from nflow.flows import InvConv1x1
from nflow.flows.base import leaf_layers
from nflow.flows.priors import PRIORS
from nflow.metrics import n_dims
from nflow.tensor import no_grad
from nflow.train.evaluate import DEFAULT_EVAL_BATCH, eval_batches, evaluate
from nflow.train.modes import evaluating

PRIOR_SIGMA = {"gaussian": 1.0, "logistic": math.pi / math.sqrt(3)}   # the priors' standard deviations
TAIL_SIGMAS = 3.0
# P(|z| > 3σ) under each prior: 2(1 - Φ(3)) for the standard normal; 2 / (1 + e^{3σ}) for the standard logistic.
PRIOR_TAIL = {"gaussian": math.erfc(TAIL_SIGMAS / math.sqrt(2)),
              "logistic": 2 / (1 + math.exp(TAIL_SIGMAS * PRIOR_SIGMA["logistic"]))}


@dataclass
class Term:
    """One term of -log p(x): its name, its mean over the data in nats per example and in bits per dimension
    (``nats`` is None for the discretisation, which exists only in bits/dim: the density is on [0, 1)^D)."""
    name: str
    nats: float
    bits_per_dim: float


@dataclass
class LayerStats:
    index: int
    level: str
    layer: str
    logdet_mean: float          # nats per example
    logdet_std: float
    parameters: int
    condition: float = None     # of W, for a 1x1 convolution


@dataclass
class LatentStats:
    level: str
    shape: tuple
    mean: float
    std: float
    tail_fraction: float        # entries beyond ±3σ of the prior
    prior_tail_fraction: float


@dataclass
class Decomposition:
    model: str
    n: int
    dims: int
    n_bins: int
    terms: list = field(default_factory=list)
    total_nats: float = 0.0
    total_bits_per_dim: float = 0.0
    layers: list = field(default_factory=list)
    latents: list = field(default_factory=list)

    def to_dict(self):
        return asdict(self)

    def __str__(self):
        return format_decomposition(self)


def level_names(model):
    """The level each of ``model.flow_layers()`` belongs to: "preprocessing", "level 1", ... in order."""
    names = ["preprocessing"] * len(leaf_layers(model.preprocess))
    for number, level in enumerate(model.levels, start=1):
        names += [f"level {number}"] * len(leaf_layers(level))
    return names


def decompose(model, data, batch_size=DEFAULT_EVAL_BATCH, seed=0, n_bins=None, dtype=np.float32):
    """Take the held-out NLL of ``model`` on ``data`` apart (module docstring); returns a :class:`Decomposition`.

    ``data``, ``batch_size``, ``seed``, ``n_bins``, ``dtype`` as for :func:`nflow.train.evaluate`, whose NLL the
    terms add up to. Runs in eval mode without a graph.
    """
    data = np.asarray(data)
    if len(data) == 0:
        raise ValueError("nflow.inspect.decompose: no data to decompose the likelihood over")
    n_bins = n_bins or default_n_bins(data)
    layers = model.flow_layers()
    levels = level_names(model)
    prior = PRIORS[model.prior]
    logdet_sum, logdet_sq = np.zeros(len(layers)), np.zeros(len(layers))
    latent_moments = []   # per latent: [Σ -log prior, Σ z, Σ z², count beyond 3σ, entries]
    latent_levels, latent_shapes = [], []

    def after_layer(index, layer_logdet):
        values = to_numpy(layer_logdet.data).astype(np.float64)
        logdet_sum[index] += values.sum()
        logdet_sq[index] += (values ** 2).sum()

    with evaluating(model), no_grad():
        for x in eval_batches(data, batch_size, seed, n_bins, dtype):
            latents, _ = model.forward_latents(model.as_input(nflow.tensor(x)), after_layer=after_layer)
            if not latent_moments:
                latent_moments = [np.zeros(5) for _ in latents]
                latent_levels = _latent_levels(layers, levels, len(latents))
                latent_shapes = [tuple(z.shape[1:]) for z in latents]
            for moments, z in zip(latent_moments, latents):
                values = to_numpy(z.data).astype(np.float64)
                moments += [-to_numpy(prior(z).data).astype(np.float64).sum(), values.sum(), (values ** 2).sum(),
                            (np.abs(values) > TAIL_SIGMAS * PRIOR_SIGMA[model.prior]).sum(), values.size]

    n, dims = len(data), n_dims(data.shape[1:])
    to_bpd = 1 / (dims * math.log(2))
    result = Decomposition(model=type(model).__name__, n=n, dims=dims, n_bins=n_bins)
    for name in dict.fromkeys(levels):   # levels in order, each once
        nats = -sum(logdet_sum[i] for i, level in enumerate(levels) if level == name) / n
        result.terms.append(Term(f"{name}: -log-dets", nats, nats * to_bpd))
        for k, level in enumerate(latent_levels):
            if level == name:
                nats = latent_moments[k][0] / n
                result.terms.append(Term(f"{name}: -log prior of latent {latent_shapes[k]}", nats, nats * to_bpd))
    result.total_nats = sum(t.nats for t in result.terms)
    discretisation = math.log2(n_bins)
    if n_bins > 1:
        result.terms.append(Term(f"discretisation: log2({n_bins}) per dimension", None, discretisation))
    result.total_bits_per_dim = result.total_nats * to_bpd + discretisation
    for i, layer in enumerate(layers):
        mean = logdet_sum[i] / n
        std = math.sqrt(max(logdet_sq[i] / n - mean ** 2, 0.0))
        result.layers.append(LayerStats(i, levels[i], type(layer).__name__, mean, std,
                                        sum(int(p.size) for p in layer.parameters()), _condition(layer)))
    for k, moments in enumerate(latent_moments):
        _, total, total_sq, tail, count = moments
        mean = total / count
        result.latents.append(LatentStats(latent_levels[k], latent_shapes[k], mean,
                                          math.sqrt(max(total_sq / count - mean ** 2, 0.0)), tail / count,
                                          PRIOR_TAIL[model.prior]))
    return result


def _latent_levels(layers, levels, n_latents):
    """The level each latent leaves from: a factoring-out layer's level, and the last level for the top one."""
    out = [levels[i] for i, layer in enumerate(layers) if layer.factors_out]
    out.append(levels[-1])
    if len(out) != n_latents:
        raise AssertionError(f"nflow.inspect: {n_latents} latents but {len(out)} factoring-out points")
    return out


def _condition(layer):
    if not isinstance(layer, InvConv1x1):
        return None
    with no_grad():
        w = to_numpy(layer.weight_matrix().data).astype(np.float64)
    return float(np.linalg.cond(w))


def check_against_evaluate(decomposition, model, data, batch_size=DEFAULT_EVAL_BATCH, seed=0):
    """The relative difference between the terms' sum and :func:`evaluate`'s NLL on the same data."""
    nll = evaluate(model, data, batch_size=batch_size, seed=seed)["nll"]
    return abs(decomposition.total_nats - nll) / abs(nll)


def format_decomposition(d):
    """The decomposition as three text tables: terms, layers, latents."""
    width = max(len(t.name) for t in d.terms)
    lines = [f"{d.model}: -log p(x) over {d.n} examples of {d.dims} dimensions, taken apart",
             f"{'term':{width}s}  {'nats':>12s}  {'bits/dim':>9s}"]
    lines += [f"{t.name:{width}s}  {'' if t.nats is None else f'{t.nats:12.4f}':>12s}  {t.bits_per_dim:9.4f}"
              for t in d.terms]
    lines += [f"{'total (= nflow eval)':{width}s}  {d.total_nats:12.4f}  {d.total_bits_per_dim:9.4f}", "",
              f"{'#':>3s}  {'level':13s} {'layer':20s} {'log-det mean':>12s} {'± std':>9s} {'params':>9s}  cond(W)"]
    for s in d.layers:
        cond = f"{s.condition:.3g}" if s.condition is not None else ""
        lines.append(f"{s.index:3d}  {s.level:13s} {s.layer:20s} {s.logdet_mean:12.3f} {s.logdet_std:9.3f} "
                     f"{s.parameters:9d}  {cond}")
    lines += ["", f"{'latent':13s} {'shape':14s} {'mean':>8s} {'std':>8s} {'beyond ±3σ':>11s} {'prior':>8s}"]
    for z in d.latents:
        lines.append(f"{z.level:13s} {str(z.shape):14s} {z.mean:8.3f} {z.std:8.3f} {z.tail_fraction:11.4f} "
                     f"{z.prior_tail_fraction:8.4f}")
    return "\n".join(lines)


def latent_picture(z, image_shape, sigma=1.0):
    """A latent (n, c, h, w) — or (n, D) with D the image's size — as images of ``image_shape`` in [0, 1]: the
    root mean square over its channels at each position, black at 0 and white from 3σ of the prior on, enlarged
    by repetition to the image's size (every level's latent covers the whole image at a coarser grid)."""
    z = np.asarray(z, dtype=np.float64)
    c, height, width = image_shape
    if z.ndim == 2:
        z = z.reshape((len(z),) + tuple(image_shape))
    magnitude = np.sqrt((z ** 2).mean(axis=1))                        # (n, h, w)
    magnitude = magnitude.repeat(height // magnitude.shape[1], axis=1).repeat(width // magnitude.shape[2], axis=2)
    return np.repeat(np.clip(magnitude / (TAIL_SIGMAS * sigma), 0.0, 1.0)[:, None], c, axis=1)


def level_pictures(model, images, seed=0):
    """What each level carries (Dinh et al. 2017, Fig. 4), as rows of n images: the inputs; each level's latent
    (:func:`latent_picture`, the first level first); then images decoded from the top latent alone (the others at
    zero, the prior's mode for both priors), adding the latents of lower levels one by one, the last the
    reconstruction. ``images``: a few examples of the data. Returns an array (rows · n, C, H, W) in [0, 1] for
    :func:`nflow.image.save_grid` with ``nrow=n``."""
    x = next(eval_batches(np.asarray(images), len(images), seed))
    latents = model.encode(x)
    latents = latents if isinstance(latents, list) else [latents]
    rows = [np.asarray(x)]
    rows += [latent_picture(to_numpy(z), model.input_shape, PRIOR_SIGMA[model.prior]) for z in latents]
    for keep in range(1, len(latents) + 1):   # the top `keep` latents kept, the lower ones at zero
        partial = [z if k >= len(latents) - keep else np.zeros_like(z) for k, z in enumerate(latents)]
        rows.append(to_numpy(model.decode(partial)))
    return np.clip(np.concatenate(rows), 0.0, 1.0)
