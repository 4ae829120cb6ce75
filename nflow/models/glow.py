"""Glow (Kingma & Dhariwal 2018): levels of [squeeze, K × step of flow, split], a learned top prior.

A step of flow (§3, Fig. 2a): ActNorm -> invertible 1x1 conv (plain or LU) -> coupling (affine with
s = sigmoid(h + 2), or additive), the coupling's network conv3x3 - ReLU - conv1x1 - ReLU - ZeroConv3x3.
Each level but the last ends with a split whose factored-out half has a learned conditional Gaussian prior;
the last ends with a learned top prior (both written as standardising flows, :mod:`nflow.flows.split`). Input [0, 1) is centred (x - ½).

Class-conditional (``num_classes=K``, as the code release's ``ycond``): the top latent's prior depends on the label,
p(ε | y) = N(ε; m_y, exp(s_y)²) with (m_y, s_y) a zero-initialised linear map of onehot(y), per channel, broadcast
over space (``label_prior="channel"``, openai/glow's), or per channel and position (``label_prior="position"``: a
class template in latent space) (:mod:`nflow.models.labels`, which says how this differs from openai/glow's
placement). Then
``log_prob(x, y)`` = log p(x | y), ``sample(n, y=...)`` draws given classes, and ``predict(x)`` gives p(y | x) by
Bayes' rule from the K conditional likelihoods. The flow itself takes no label: ``encode``/``decode`` are those of
the unconditional model. ``class_weight > 0`` adds openai/glow's classification head on the top latent, and
:meth:`Glow.training_loss` adds its cross-entropy, times the weight, to the NLL.
"""
import math

import numpy as np

import nflow.functional as F
from nflow.backend import to_numpy
from nflow.flows.base import FlowSequence, channel_split_sizes
from nflow.flows.additive_coupling import AdditiveCoupling
from nflow.flows.affine_coupling import AffineCoupling
from nflow.flows.actnorm import ActNorm
from nflow.flows.invconv import InvConv1x1
from nflow.flows.nets import GlowNet
from nflow.flows.squeeze import Squeeze
from nflow.flows.preprocess import Centre
from nflow.flows.priors import PRIORS
from nflow.flows.split import LearnedStandardise, Split
from nflow.models.base import FlowModel, require_count
from nflow.models.labels import ClassHead, LabelPrior, check_labels, posterior
from nflow.tensor import Tensor, no_grad

COUPLINGS = ("affine", "additive")
LABEL_PRIORS = ("channel", "position")   # (m_y, s_y) per channel, or per channel and position


def step_of_flow(channels, hidden, lu, coupling, dtype):
    """ActNorm -> InvConv1x1 -> coupling, as a list of layers."""
    n_cond, n_trans = channel_split_sizes(channels, "Glow step of flow")
    if coupling == "affine":
        layer = AffineCoupling(channels, GlowNet(n_cond, 2 * n_trans, hidden, dtype=dtype), form="sigmoid", dtype=dtype)
    else:
        layer = AdditiveCoupling(channels, GlowNet(n_cond, n_trans, hidden, dtype=dtype))
    return [ActNorm(channels, dtype=dtype), InvConv1x1(channels, lu=lu, dtype=dtype), layer]


class Glow(FlowModel):
    name = "Glow"

    def __init__(self, input_shape=(1, 28, 28), levels=2, steps=8, hidden=256, lu=True, coupling="affine",
                 num_classes=None, class_weight=0.0, label_prior=None, dtype=np.float32):
        if num_classes is not None:
            require_count("Glow", "num_classes", num_classes, minimum=2)
        if isinstance(class_weight, bool) or not isinstance(class_weight, (int, float, np.floating, np.integer)) \
                or not math.isfinite(class_weight) or class_weight < 0:
            raise ValueError(f"Glow: class_weight must be a finite number ≥ 0, got {class_weight!r}")
        if class_weight and num_classes is None:
            raise ValueError("Glow: class_weight > 0 weighs a classification loss, which needs labels: pass "
                             "num_classes too")
        if label_prior is not None and num_classes is None:
            raise ValueError(f"Glow: label_prior={label_prior!r} chooses the form of the class-conditional prior, "
                             "which needs labels: pass num_classes too")
        label_prior = "channel" if label_prior is None else label_prior
        if label_prior not in LABEL_PRIORS:
            raise ValueError(f"Glow: label_prior must be one of {LABEL_PRIORS}, got {label_prior!r}")
        if coupling not in COUPLINGS:
            raise ValueError(f"Glow: coupling must be one of {COUPLINGS}, got {coupling!r}")
        input_shape = tuple(input_shape)
        if len(input_shape) != 3:
            raise ValueError(f"Glow: input_shape must be (C, H, W), got {input_shape}")
        for name, value in (("input_shape's C, H and W", min(input_shape)), ("levels", levels), ("steps", steps),
                            ("hidden", hidden)):
            require_count("Glow", name, value)
        c, h, w = input_shape
        if h % (2 ** levels) or w % (2 ** levels):
            raise ValueError(f"Glow: {levels} levels squeeze the image {levels} times; H and W must be divisible "
                             f"by 2^{levels} = {2 ** levels}, got input shape {input_shape}")
        flows = []
        for level in range(levels):
            c, h, w = 4 * c, h // 2, w // 2
            layers = [Squeeze()]
            for _ in range(steps):
                layers += step_of_flow(c, hidden, lu, coupling, dtype)
            if level < levels - 1:
                layers.append(Split(c, dtype=dtype))
                c //= 2
            else:
                layers.append(LearnedStandardise((c, h, w), dtype=dtype))
            flows.append(FlowSequence(layers))
        super().__init__(input_shape, Centre(), flows, input_range=(0.0, 1.0), dtype=dtype)
        self.config = dict(model="glow", input_shape=list(input_shape), levels=levels, steps=steps,
                           hidden=hidden, lu=lu, coupling=coupling)
        self.num_classes, self.class_weight = num_classes, float(class_weight)
        if num_classes is not None:   # an unconditional Glow keeps its state dict as it was
            self.label_prior = LabelPrior(num_classes, (c, h, w), dtype=dtype,
                                          per_position=label_prior == "position")
            if class_weight > 0:
                self.class_head = ClassHead(c, num_classes, dtype=dtype)
            self.config.update(num_classes=num_classes, class_weight=float(class_weight), label_prior=label_prior)

    # -- labels ---------------------------------------------------------------------------------------
    def _refuse_labels(self, y, where):
        if y is not None:
            raise ValueError(f"{where}: this Glow is unconditional (num_classes=None) and takes no labels; "
                             "build it with num_classes=K to condition on a class")

    def _conditional_terms(self, x, y, where):
        """(log p(x | y) as a (N,) Tensor, the top latent ε, the checked labels)."""
        x = self.as_input(x)
        labels = check_labels(y, x.shape[0], self.num_classes, where)
        latents, logdet = self.forward_latents(x)
        prior = PRIORS[self.prior]
        for z in latents[:-1]:
            logdet = logdet + prior(z)
        return logdet + self.label_prior.log_prob(latents[-1], labels), latents[-1], labels

    def log_prob(self, x, y=None):
        """log p(x) in nats per sample, a (N,) Tensor; for a class-conditional Glow log p(x | y), with ``y`` the
        labels, an int array (N,) of values 0..K-1 (required)."""
        if self.num_classes is None:
            self._refuse_labels(y, "Glow.log_prob")
            return super().log_prob(x)
        return self._conditional_terms(x, y, "Glow.log_prob")[0]

    def training_loss(self, x, y):
        """The objective of training with labels: -(1/N) Σ log p(x_i | y_i) + class_weight · (1/N) Σ CE_i, with
        CE the classification head's cross-entropy in nats (openai/glow adds weight_y · CE / ln 2 to the bits per
        dimension; its weight_y is ours divided by D). Returns (objective Tensor, {"nll": float, "class_ce":
        float or None}) — "nll" is the mean negative log-likelihood alone, in nats per example."""
        if self.num_classes is None:
            raise ValueError("Glow.training_loss: this Glow is unconditional (num_classes=None); train it on "
                             "log_prob(x) without labels")
        log_prob, eps, labels = self._conditional_terms(x, y, "Glow.training_loss")
        nll = -F.mean(log_prob)
        parts = {"nll": float(to_numpy(nll.data)), "class_ce": None}
        if self.class_weight > 0:
            ce = F.mean(self.class_head.cross_entropy(eps, labels))
            parts["class_ce"] = float(to_numpy(ce.data))
            return nll + ce * self.class_weight, parts
        return nll, parts

    def class_log_likelihoods(self, x):
        """log p(x | y = k) for every class k, an (N, K) float64 array: one pass through the flow (which takes no
        label), then the K top priors in float64. Evaluated in eval mode without a graph."""
        if self.num_classes is None:
            raise ValueError("Glow.class_log_likelihoods: this Glow is unconditional (num_classes=None)")
        was_training = self.training
        self.eval()
        try:
            with no_grad():
                latents, logdet = self.forward_latents(self.as_input(x))
                common = to_numpy(logdet.data).astype(np.float64)
                for z in latents[:-1]:
                    common = common + to_numpy(PRIORS[self.prior](Tensor(z.data.astype(np.float64))).data)
        finally:
            self.train(was_training)
        return common[:, None] + self.label_prior.class_log_probs(latents[-1].data)

    def predict(self, x, class_prior=None):
        """The class posterior p(y | x) ∝ p(x | y) p(y), an (N, K) float64 array whose rows sum to 1; p(y) is
        ``class_prior`` ((K,) probabilities), uniform when None. Normalised with logsumexp in float64."""
        if self.num_classes is None:
            raise ValueError("Glow.predict: this Glow is unconditional (num_classes=None); it has no classes")
        return posterior(self.class_log_likelihoods(x), class_prior)

    def sample(self, n, temperature=1.0, seed=None, *, y=None):
        """n samples at ``temperature``. A class-conditional Glow draws the top latent from p(ε | y):
        ε = m_y + exp(s_y)·T·e, e ~ N(0, I). ``y``: one label for all, or an int array of n labels; None gives
        the labels 0, 1, …, K-1 in turn (a sheet that shows every class). An unconditional Glow refuses a y."""
        if self.num_classes is None:
            self._refuse_labels(y, "Glow.sample")
            return super().sample(n, temperature, seed)
        n = require_count("Glow.sample", "n", n)
        if y is None:
            y = np.arange(n) % self.num_classes
        elif np.ndim(y) == 0:
            y = np.full(n, y, dtype=np.asarray(y).dtype)
        labels = check_labels(y, n, self.num_classes, "Glow.sample")

        def move_top(latents):
            return latents[:-1] + [self.label_prior.shift(latents[-1], labels)]

        return self._sample(n, temperature, seed, move_latents=move_top)
