"""Class labels in a flow: a prior on the top latent that depends on the label, a classification head on it,
and the label checks (Kingma & Dhariwal 2018, §5 and the code release's ``ycond`` / ``weight_y``).

**The class-conditional top prior.** Glow's top latent ε (what leaves the last level, after the learned top prior
has standardised it, :class:`~nflow.flows.split.LearnedStandardise`) is scored under

    p(ε | y) = N(ε; m_y, exp(s_y)²),   (m_y, s_y) = W · onehot(y),   W zero at the start,

    log p(ε | y) = log N(u; 0, I) - Σ_{c,i,j} s_y broadcast to (C, H, W),   u = (ε - m_y)·exp(-s_y).

Two forms of (m_y, s_y), one code path (only the shape the label map's output takes differs):

- ``per_position=False`` (openai/glow's ``ycond``): m_y, s_y of shape (C, 1, 1), one per channel, broadcast over
  the H × W positions — W ∈ R^{2C×K}, and the log-det term is H·W·Σ_c s_y,c.
- ``per_position=True``: m_y, s_y of shape (C, H, W), one per channel and position — W ∈ R^{2CHW×K}. The class
  then has a spatial mean, a template in latent space; with the channel form a class can only shift every
  position alike, 2·C numbers per class (16 for a 2-level MNIST Glow), with which ``predict`` told MNIST
  digits apart only 20–25 % of the time (benchmarks/RESULTS.md).

A fresh model is therefore the unconditional one exactly, in both forms.

openai/glow's ``prior`` adds the same zero-initialised linear map of the one-hot label (``y_emb``) to the
learned top prior's (μ, log σ) *before* standardising: z ~ N(μ + m_y, (σ·e^{s_y})²). Here the label acts after
the standardisation, z ~ N(μ + σ·m_y, (σ·e^{s_y})²), so the class mean's offset is scaled by σ per position. The
reason: the flow itself stays label-free — encode, decode, the walk, the property kit and state dicts of the
unconditional layers are unchanged — and the label enters the log-likelihood in the prior term alone.

**The classification head** (openai/glow's ``classifier``, used when ``weight_y > 0``): a zero-initialised linear
map from the spatial mean of the top latent (ε here, z there) to K logits, trained by cross-entropy.
"""
import numpy as np

import nflow.functional as F
from nflow.backend import array_module_for_backend, to_numpy
from nflow.flows.priors import LOG_2PI, standard_gaussian_log_prob
from nflow.nn.layers import Linear
from nflow.nn.module import Module
from nflow.tensor import Tensor

MEAN_AND_LOG_STD = 2   # the label map gives a mean and a log-std per channel (and position)
PRIOR_SUM_TOL = 1e-6   # how far from 1 a given class prior may sum (probabilities written with a few digits)


def check_labels(labels, n, num_classes, where):
    """``labels`` as an int64 array (n,) of values in 0..num_classes-1; ValueError/TypeError naming ``where``."""
    if labels is None:
        raise ValueError(f"{where}: this model is class-conditional ({num_classes} classes) and needs the labels "
                         f"y, an int array of shape ({n},)")
    labels = np.asarray(to_numpy(labels.data if isinstance(labels, Tensor) else labels))
    if labels.dtype.kind not in "iu":
        raise TypeError(f"{where}: labels must be integers 0..{num_classes - 1}, got dtype {labels.dtype}")
    if labels.shape != (n,):
        raise ValueError(f"{where}: expected labels of shape ({n},), one per example, got {labels.shape}")
    if n and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)]
        raise ValueError(f"{where}: labels must lie in 0..{num_classes - 1} ({num_classes} classes); "
                         f"{len(bad)} do not, such as {bad[0]}")
    return labels.astype(np.int64)


def one_hot(labels, num_classes, dtype):
    """(N,) int labels -> (N, K) Tensor of 0/1 on the current backend (a constant: no gradient)."""
    xp = array_module_for_backend()
    eye = np.eye(num_classes, dtype=dtype)[labels]
    return Tensor(xp.asarray(eye))


class LabelPrior(Module):
    """p(ε | y) = N(ε; m_y, exp(s_y)²) on a top latent of shape (C, H, W), (m_y, s_y) = W·onehot(y) per channel
    (``per_position=False``, openai/glow's) or per channel and position (``per_position=True``) (module
    docstring). ``log_prob(eps, labels)`` -> (N,) Tensor; ``mean_and_log_std()`` -> the K classes' (m, s) as
    float64 host arrays (K, C, 1, 1) or (K, C, H, W) each, for sampling and for the class posterior."""

    def __init__(self, num_classes, shape, dtype=np.float32, per_position=False):
        super().__init__()
        self.num_classes, self.shape = num_classes, tuple(shape)
        self.channels = self.shape[0]
        self.per_position = bool(per_position)
        # The shape of m_y and s_y: it broadcasts against the (C, H, W) latent in every formula below.
        self.param_shape = self.shape if self.per_position else (self.channels, 1, 1)
        # How many latent entries share one s_y entry: its weight in the log-det term.
        self.repeats = int(np.prod(self.shape)) // int(np.prod(self.param_shape))
        # openai/glow's linear_zeros("y_emb", ...) also has a bias; with a one-hot input it would only repeat
        # the learned top prior's own (μ, log σ), so there is none.
        self.embed = Linear(num_classes, MEAN_AND_LOG_STD * int(np.prod(self.param_shape)), bias=False,
                            zero_init=True, dtype=dtype)

    def _mean_and_log_std(self, labels, dtype):
        params = self.embed(one_hot(labels, self.num_classes, dtype))          # (N, 2·C·h·w)
        c, h, w = self.param_shape
        params = F.reshape(params, (len(labels), MEAN_AND_LOG_STD * c, h, w))
        return F.split(params, MEAN_AND_LOG_STD, axis=1)                       # first m, then s (as openai/glow)

    def log_prob(self, eps, labels):
        if tuple(eps.shape[1:]) != self.shape:
            raise ValueError(f"LabelPrior: expected a top latent of shape (N, {', '.join(map(str, self.shape))}), "
                             f"got {tuple(eps.shape)}")
        mean, log_std = self._mean_and_log_std(labels, eps.dtype)
        u = (eps - mean) * F.exp(-log_std)
        return standard_gaussian_log_prob(u) - F.sum_per_sample(log_std) * self.repeats

    def mean_and_log_std(self):
        w = to_numpy(self.embed.weight.data).astype(np.float64)                 # (2·C·h·w, K)
        w = w.T.reshape((self.num_classes, MEAN_AND_LOG_STD) + self.param_shape)
        return w[:, 0], w[:, 1]

    def class_log_probs(self, eps):
        """log N(ε; m_k, exp(s_k)²) for every class k, in float64 on the host: (N, K)."""
        eps = to_numpy(eps).astype(np.float64)
        mean, log_std = self.mean_and_log_std()
        out = np.empty((len(eps), self.num_classes))
        for k in range(self.num_classes):
            u = (eps - mean[k]) * np.exp(-log_std[k])
            log_det = self.repeats * log_std[k].sum()
            out[:, k] = (-0.5 * (u ** 2 + LOG_2PI)).reshape(len(eps), -1).sum(axis=1) - log_det
        return out

    def shift(self, draws, labels):
        """Standard draws (N, C, H, W) (already scaled by the temperature) -> m_y + exp(s_y)·draws."""
        mean, log_std = self.mean_and_log_std()
        return mean[labels] + np.exp(log_std[labels]) * draws


class ClassHead(Module):
    """Logits (N, K) = a zero-initialised linear map of the spatial mean of the top latent (openai/glow's
    ``classifier``); ``cross_entropy(eps, labels)`` -> (N,) Tensor, -log softmax(logits)_y in nats."""

    def __init__(self, channels, num_classes, dtype=np.float32):
        super().__init__()
        self.linear = Linear(channels, num_classes, zero_init=True, dtype=dtype)
        self.num_classes = num_classes

    def forward(self, eps):
        return self.linear(F.mean(eps, axis=(2, 3)))

    def cross_entropy(self, eps, labels):
        logits = self(eps)
        picked = F.sum(logits * one_hot(labels, self.num_classes, logits.dtype), axis=1)
        return F.logsumexp(logits, axis=1) - picked


def posterior(log_likelihoods, class_prior=None):
    """p(y | x) ∝ p(x | y) p(y) from (N, K) log-likelihoods, in float64 (logsumexp); ``class_prior`` (K,)
    probabilities summing to 1, uniform when None. Returns (N, K) probabilities, each row summing to 1."""
    log_likelihoods = np.asarray(log_likelihoods, dtype=np.float64)
    k = log_likelihoods.shape[1]
    if class_prior is None:
        log_prior = np.full(k, -np.log(k))
    else:
        class_prior = np.asarray(class_prior, dtype=np.float64)
        if class_prior.shape != (k,) or not np.all(np.isfinite(class_prior)) or (class_prior < 0).any() \
                or abs(class_prior.sum() - 1) > PRIOR_SUM_TOL:
            raise ValueError(f"predict: class_prior must be {k} probabilities ≥ 0 summing to 1, got {class_prior}")
        with np.errstate(divide="ignore"):   # a class of prior 0 gets posterior 0
            log_prior = np.log(class_prior)
    joint = log_likelihoods + log_prior
    top = joint.max(axis=1, keepdims=True)
    log_evidence = top + np.log(np.exp(joint - top).sum(axis=1, keepdims=True))
    return np.exp(joint - log_evidence)
