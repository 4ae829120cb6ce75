"""PyTorch implementations of nflow's NICE, RealNVP and Glow, for parity checks and benchmarks.

Written independently of nflow's code (nothing here imports nflow), mirroring its conventions listed below so
that the same weights give the same function; the parity tests (tests/test_torch_parity.py) check it. Module and
attribute names follow nflow's so that ``state_dict`` keys are the same dotted names
(``levels.0.layers.3.net.conv1.weight``) and :mod:`benchmarks.weights` copies weights 1:1.

Conventions mirrored (x is the [0, 1)-valued input, N the batch, P = H·W pixels per channel):

- model:       log p(x) = log|det ∂h₀/∂x| + Σ_levels log|det| + Σ_latents log p_prior(z); after every level but
               the last, the first half of the channels flows on and the second half leaves as a latent.
- preprocess:  Glow Centre y = x - ½; RealNVP images Logit y = logit(α + (1 - 2α)x), α = 0.05; NICE flattens.
- priors:      standard Gaussian, or standard logistic -Σ (softplus(z) + softplus(-z)) (NICE).
- coupling:    channel mask conditions on the first ⌊C/2⌋ channels and transforms the rest (parity 1 swaps:
               transforms the first C - ⌊C/2⌋, conditions on the last ⌊C/2⌋); net output [raw log-scale h, shift t];
               y_b = x_b · s + t with s = sigmoid(h + 2) (Glow) or s = exp(γ · tanh(h)) (RealNVP, γ per channel).
               Checkerboard (RealNVP): b[i, j] = (i + j + parity) mod 2, net sees x·b, h and t are multiplied by 1 - b.
               Additive (NICE, Glow additive): y_b = x_b + net(x_a).
- ActNorm:     y = (x + b) · exp(log_s), log-det P·Σ log_s; data-dependent init on the first training batch:
               b = -mean, log_s = -log(std + 1e-6) (population std, computed in float64).
- InvConv1x1:  y = W x per pixel, log-det P·log|det W|; LU: W = Perm · (L∘mask + I) · (U∘maskᵀ + diag(sign_s·exp(log_s))),
               plain: log|det W| and W⁻¹ in float64 (as nflow does).
- Squeeze:     (N, C, H, W) -> (N, 4C, H/2, W/2), channel c·4 + 2·di + dj.
- ZeroConv2d:  (conv3x3(x) + b) · exp(3 · log_scale).
- Split:       [z₁, z₂] -> [z₁, (z₂ - μ)·exp(-log σ)], (μ, log σ) = ZeroConv(z₁) split in that order, log-det -Σ log σ.
- LearnedStandardise: z -> (z - μ)·exp(-log σ) with per-position μ, log σ; log-det -Σ log σ.
- NiceScaling: y = x · exp(s), log-det Σ s.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as tF

LOG_2PI = math.log(2 * math.pi)
SIGMOID_SHIFT = 2.0        # Glow: s = sigmoid(h + 2)
ZERO_CONV_LOGSCALE = 3.0   # Glow's logscale_factor
GLOW_INIT_STD = 0.05
ACTNORM_EPS = 1e-6
LOGIT_ALPHA = 0.05


def _per_sample(a):
    return a.reshape(a.shape[0], -1).sum(dim=1)


def _zeros_logdet(x):
    return x.new_zeros(x.shape[0])


# ------------------------------------------------------------------------------------------------- priors
def standard_gaussian_log_prob(z):
    return -0.5 * _per_sample(z * z + LOG_2PI)


def standard_logistic_log_prob(z):
    return -_per_sample(tF.softplus(z) + tF.softplus(-z))


PRIORS = {"gaussian": standard_gaussian_log_prob, "logistic": standard_logistic_log_prob}


def sample_prior(name, shape, temperature=1.0, generator=None, dtype=torch.float32):
    if name == "gaussian":
        return torch.randn(shape, generator=generator, dtype=dtype) * temperature
    if name == "logistic":
        u = torch.rand(shape, generator=generator, dtype=dtype).clamp(1e-12, 1 - 1e-12)
        return (torch.log(u) - torch.log1p(-u)) * temperature
    raise ValueError(f"unknown prior {name!r}")


# ------------------------------------------------------------------------------------------------- base
class Flow(nn.Module):
    """forward(x) -> (y, logdet (N,)); inverse(y) -> (x, logdet of the inverse)."""

    def inverse(self, y):
        raise NotImplementedError


class FlowSequence(Flow):
    def __init__(self, layers):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        total = _zeros_logdet(x)
        for layer in self.layers:
            x, ld = layer(x)
            total = total + ld
        return x, total

    def inverse(self, y):
        total = _zeros_logdet(y)
        for layer in reversed(self.layers):
            y, ld = layer.inverse(y)
            total = total + ld
        return y, total


# ------------------------------------------------------------------------------------------------- preprocessing
class Centre(Flow):
    def forward(self, x):
        return x - 0.5, _zeros_logdet(x)

    def inverse(self, y):
        return y + 0.5, _zeros_logdet(y)


class Logit(Flow):
    def __init__(self, alpha=LOGIT_ALPHA):
        super().__init__()
        self.alpha = alpha

    def forward(self, x):
        p = self.alpha + (1 - 2 * self.alpha) * x
        log_p, log_1mp = torch.log(p), torch.log(1 - p)
        return log_p - log_1mp, _per_sample(math.log(1 - 2 * self.alpha) - log_p - log_1mp)

    def inverse(self, y):
        x = (torch.sigmoid(y) - self.alpha) / (1 - 2 * self.alpha)
        return x, _per_sample(tF.logsigmoid(y) + tF.logsigmoid(-y) - math.log(1 - 2 * self.alpha))


class Flatten(Flow):
    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x):
        return x.reshape(x.shape[0], -1), _zeros_logdet(x)

    def inverse(self, y):
        return y.reshape((y.shape[0],) + self.shape), _zeros_logdet(y)


class Identity(Flow):
    def forward(self, x):
        return x, _zeros_logdet(x)

    def inverse(self, y):
        return y, _zeros_logdet(y)


# ------------------------------------------------------------------------------------------------- nets
class ZeroConv2d(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)
        self.log_scale = nn.Parameter(torch.zeros(out_channels, 1, 1))

    def forward(self, x):
        return self.conv(x) * torch.exp(self.log_scale * ZERO_CONV_LOGSCALE)


class GlowNet(nn.Module):
    """conv3x3 - ReLU - conv1x1 - ReLU - ZeroConv3x3."""

    def __init__(self, in_channels, out_channels, hidden):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, hidden, 1)
        for conv in (self.conv1, self.conv2):
            nn.init.normal_(conv.weight, std=GLOW_INIT_STD)
            nn.init.zeros_(conv.bias)
        self.conv3 = ZeroConv2d(hidden, out_channels)

    def forward(self, x):
        return self.conv3(torch.relu(self.conv2(torch.relu(self.conv1(x)))))


class ConvNet(nn.Module):
    """conv3x3 - ReLU - conv3x3 - ReLU - ZeroConv3x3 (RealNVP on images)."""

    def __init__(self, in_channels, out_channels, hidden):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, hidden, 3, padding=1)
        self.conv3 = ZeroConv2d(hidden, out_channels)

    def forward(self, x):
        return self.conv3(torch.relu(self.conv2(torch.relu(self.conv1(x)))))


class MLP(nn.Module):
    """in -> [Linear - ReLU] × depth -> Linear(out), the last layer zero-initialised."""

    def __init__(self, in_features, out_features, hidden, depth):
        super().__init__()
        sizes = [in_features] + [hidden] * depth
        self.hidden = nn.ModuleList([nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])])
        for layer in self.hidden:
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.out = nn.Linear(sizes[-1], out_features)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x):
        for layer in self.hidden:
            x = torch.relu(layer(x))
        return self.out(x)


# ------------------------------------------------------------------------------------------------- couplings
def checkerboard(height, width, parity, dtype, device=None):
    i = torch.arange(height, device=device).view(-1, 1)
    j = torch.arange(width, device=device).view(1, -1)
    return ((i + j + parity) % 2).to(dtype).view(1, 1, height, width)


class _ChannelCoupling(Flow):
    def __init__(self, channels, net, parity):
        super().__init__()
        self.channels, self.parity, self.net = channels, parity, net
        self.n_cond, self.n_trans = channels // 2, channels - channels // 2

    def _split(self, x):
        if self.parity == 0:
            return x[:, :self.n_cond], x[:, self.n_cond:]
        return x[:, self.n_trans:], x[:, :self.n_trans]

    def _join(self, cond, trans):
        return torch.cat([cond, trans] if self.parity == 0 else [trans, cond], dim=1)


class AdditiveCoupling(_ChannelCoupling):
    def forward(self, x):
        xa, xb = self._split(x)
        return self._join(xa, xb + self.net(xa)), _zeros_logdet(x)

    def inverse(self, y):
        ya, yb = self._split(y)
        return self._join(ya, yb - self.net(ya)), _zeros_logdet(y)


def _log_scale(h, form):
    return tF.logsigmoid(h + SIGMOID_SHIFT) if form == "sigmoid" else h


class AffineCoupling(_ChannelCoupling):
    """Channel-mask affine coupling, y_b = x_b · s + t; ``form`` "sigmoid" (Glow) or "exp" (RealNVP, γ·tanh)."""

    def __init__(self, channels, net, parity=0, form="sigmoid"):
        super().__init__(channels, net, parity)
        self.form = form
        if form == "exp":
            self.log_scale_bound = nn.Parameter(torch.ones(1, self.n_trans))

    def _log_s_shift(self, cond):
        h, t = self.net(cond).chunk(2, dim=1)
        if self.form == "exp":
            gamma = self.log_scale_bound
            if h.dim() > 2:
                gamma = gamma.view(1, -1, *([1] * (h.dim() - 2)))
            return gamma * torch.tanh(h), t
        return _log_scale(h, "sigmoid"), t

    def forward(self, x):
        xa, xb = self._split(x)
        log_s, t = self._log_s_shift(xa)
        return self._join(xa, xb * torch.exp(log_s) + t), _per_sample(log_s)

    def inverse(self, y):
        ya, yb = self._split(y)
        log_s, t = self._log_s_shift(ya)
        return self._join(ya, (yb - t) * torch.exp(-log_s)), -_per_sample(log_s)


class CheckerboardCoupling(Flow):
    """RealNVP's checkerboard affine coupling (exp form): positions with b = 1 pass through."""

    def __init__(self, channels, net, parity):
        super().__init__()
        self.channels, self.parity, self.net = channels, parity, net
        self.log_scale_bound = nn.Parameter(torch.ones(1, channels))

    def _log_s_shift(self, x):
        b = checkerboard(x.shape[2], x.shape[3], self.parity, x.dtype, x.device)
        h, t = self.net(x * b).chunk(2, dim=1)
        keep = 1 - b
        log_s = self.log_scale_bound.view(1, -1, 1, 1) * torch.tanh(h) * keep
        return log_s, t * keep

    def forward(self, x):
        log_s, t = self._log_s_shift(x)
        return x * torch.exp(log_s) + t, _per_sample(log_s)

    def inverse(self, y):
        log_s, t = self._log_s_shift(y)
        return (y - t) * torch.exp(-log_s), -_per_sample(log_s)


# ------------------------------------------------------------------------------------------------- per-channel maps
class NiceScaling(Flow):
    def __init__(self, features):
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(features))

    def forward(self, x):
        return x * torch.exp(self.log_scale), self.log_scale.sum().expand(x.shape[0])

    def inverse(self, y):
        return y * torch.exp(-self.log_scale), (-self.log_scale.sum()).expand(y.shape[0])


class ActNorm(Flow):
    def __init__(self, channels):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))
        self.log_scale = nn.Parameter(torch.zeros(channels))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.int8))
        # The buffer read once into a Python bool, so a compiled forward has no data-dependent branch (graph
        # break); reset whenever the buffer may have been overwritten (state dict loads, weight transfer).
        self.known_initialised = False

    def _load_from_state_dict(self, *args, **kwargs):
        self.known_initialised = False
        super()._load_from_state_dict(*args, **kwargs)

    @torch.no_grad()
    def _initialise(self, x):
        dims = [0] + list(range(2, x.dim()))
        data = x.detach().double()
        mean = data.mean(dim=dims)
        std = data.std(dim=dims, unbiased=False)
        self.bias.copy_(-mean)
        self.log_scale.copy_(-torch.log(std + ACTNORM_EPS))
        self.initialised.fill_(1)

    def _view(self, v, ndim):
        return v.view(1, -1, *([1] * (ndim - 2)))

    def forward(self, x):
        if not self.known_initialised:
            self.known_initialised = bool(self.initialised)
            if self.training and not self.known_initialised:
                self._initialise(x)
                self.known_initialised = True
        pixels = x[0, 0].numel()
        y = (x + self._view(self.bias, x.dim())) * self._view(torch.exp(self.log_scale), x.dim())
        return y, (pixels * self.log_scale.sum()).expand(x.shape[0])

    def inverse(self, y):
        pixels = y[0, 0].numel()
        x = y * self._view(torch.exp(-self.log_scale), y.dim()) - self._view(self.bias, y.dim())
        return x, (-pixels * self.log_scale.sum()).expand(y.shape[0])


class InvConv1x1(Flow):
    def __init__(self, channels, lu=True):
        super().__init__()
        self.channels, self.lu = channels, lu
        w = torch.linalg.qr(torch.randn(channels, channels, dtype=torch.float64))[0]
        if not lu:
            self.weight = nn.Parameter(w.float())
        else:
            p, lower, upper = torch.linalg.lu(w)  # w = p @ lower @ upper
            s = torch.diagonal(upper)
            self.register_buffer("permutation", p.float())
            self.register_buffer("sign_s", torch.sign(s).float())
            # not persistent: nflow keeps no such array (it masks inside its LU kernel)
            self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1), persistent=False)
            self.lower = nn.Parameter(torch.tril(lower, -1).float())
            self.upper = nn.Parameter(torch.triu(upper, 1).float())
            self.log_s = nn.Parameter(torch.log(torch.abs(s)).float())

    def weight_matrix(self):
        if not self.lu:
            return self.weight
        eye = torch.eye(self.channels, dtype=self.lower.dtype, device=self.lower.device)
        lower = self.lower * self.lower_mask + eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign_s * torch.exp(self.log_s))
        return self.permutation @ (lower @ upper)

    def log_abs_det(self):
        if self.lu:
            return self.log_s.sum()
        return torch.linalg.slogdet(self.weight.double())[1].to(self.weight.dtype)

    def forward(self, x):
        w = self.weight_matrix()
        y = tF.conv2d(x, w.view(self.channels, self.channels, 1, 1))
        return y, (self.log_abs_det() * (x.shape[2] * x.shape[3])).expand(x.shape[0])

    def inverse(self, y):
        w = self.weight_matrix()
        w_inv = torch.linalg.inv(w.double()).to(w.dtype)
        x = tF.conv2d(y, w_inv.view(self.channels, self.channels, 1, 1))
        return x, (-self.log_abs_det() * (y.shape[2] * y.shape[3])).expand(y.shape[0])


class Squeeze(Flow):
    def forward(self, x):
        n, c, h, w = x.shape
        y = x.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
        return y.reshape(n, c * 4, h // 2, w // 2), _zeros_logdet(x)

    def inverse(self, y):
        n, c4, h, w = y.shape
        x = y.reshape(n, c4 // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
        return x.reshape(n, c4 // 4, h * 2, w * 2), _zeros_logdet(y)


class Split(Flow):
    def __init__(self, channels):
        super().__init__()
        self.prior_net = ZeroConv2d(channels // 2, channels)

    def _parts(self, x):
        z1, z2 = x.chunk(2, dim=1)
        mean, log_std = self.prior_net(z1).chunk(2, dim=1)
        return z1, z2, mean, log_std

    def forward(self, x):
        z1, z2, mean, log_std = self._parts(x)
        return torch.cat([z1, (z2 - mean) * torch.exp(-log_std)], dim=1), -_per_sample(log_std)

    def inverse(self, y):
        z1, eps, mean, log_std = self._parts(y)
        return torch.cat([z1, eps * torch.exp(log_std) + mean], dim=1), _per_sample(log_std)


class LearnedStandardise(Flow):
    def __init__(self, shape):
        super().__init__()
        self.mean = nn.Parameter(torch.zeros(shape))
        self.log_std = nn.Parameter(torch.zeros(shape))

    def forward(self, x):
        return (x - self.mean) * torch.exp(-self.log_std), (-self.log_std.sum()).expand(x.shape[0])

    def inverse(self, y):
        return y * torch.exp(self.log_std) + self.mean, self.log_std.sum().expand(y.shape[0])


# ------------------------------------------------------------------------------------------------- models
class FlowModel(nn.Module):
    def __init__(self, input_shape, preprocess, levels, prior="gaussian"):
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.preprocess = preprocess
        self.levels = nn.ModuleList(levels)
        self.prior = prior
        self._latent_shapes = None

    def forward_latents(self, x):
        h, logdet = self.preprocess(x)
        latents = []
        last = len(self.levels) - 1
        for i, level in enumerate(self.levels):
            h, ld = level(h)
            logdet = logdet + ld
            if i < last:
                h, z = h.chunk(2, dim=1)
                latents.append(z)
        latents.append(h)
        return latents, logdet

    def log_prob(self, x):
        latents, logdet = self.forward_latents(x)
        prior = PRIORS[self.prior]
        for z in latents:
            logdet = logdet + prior(z)
        return logdet

    forward = log_prob

    def encode(self, x):
        with torch.no_grad():
            return self.forward_latents(x)[0]

    def decode(self, latents):
        h = latents[-1]
        with torch.no_grad():
            for i in reversed(range(len(self.levels))):
                if i < len(self.levels) - 1:
                    h = torch.cat([h, latents[i]], dim=1)
                h, _ = self.levels[i].inverse(h)
            return self.preprocess.inverse(h)[0]

    def latent_shapes(self):
        if self._latent_shapes is None:
            p = next(self.parameters())
            with torch.no_grad():
                was = self.training
                self.eval()
                try:
                    zs, _ = self.forward_latents(torch.full((1,) + self.input_shape, 0.5, dtype=p.dtype))
                finally:
                    self.train(was)
            self._latent_shapes = [tuple(z.shape[1:]) for z in zs]
        return self._latent_shapes

    def sample(self, n, temperature=1.0, generator=None):
        dtype = next(self.parameters()).dtype
        zs = [sample_prior(self.prior, (n,) + s, temperature, generator, dtype) for s in self.latent_shapes()]
        return self.decode(zs)


class Glow(FlowModel):
    """Levels of [squeeze, K × (ActNorm, InvConv1x1, coupling), split]; the last ends with a learned top prior."""

    def __init__(self, input_shape=(1, 28, 28), levels=2, steps=8, hidden=256, lu=True, coupling="affine",
                 dtype=torch.float32):
        c, h, w = input_shape
        flows = []
        for level in range(levels):
            c, h, w = 4 * c, h // 2, w // 2
            layers = [Squeeze()]
            n_cond, n_trans = c // 2, c - c // 2
            for _ in range(steps):
                if coupling == "affine":
                    cpl = AffineCoupling(c, GlowNet(n_cond, 2 * n_trans, hidden), form="sigmoid")
                else:
                    cpl = AdditiveCoupling(c, GlowNet(n_cond, n_trans, hidden), 0)
                layers += [ActNorm(c), InvConv1x1(c, lu=lu), cpl]
            if level < levels - 1:
                layers.append(Split(c))
                c //= 2
            else:
                layers.append(LearnedStandardise((c, h, w)))
            flows.append(FlowSequence(layers))
        super().__init__(input_shape, Centre(), flows)
        self.to(dtype)


class RealNVP(FlowModel):
    """Images: per scale 3 checkerboard couplings, squeeze, 3 channel couplings, factor-out (last scale: 4
    checkerboard couplings), logit preprocessing. Vectors (D,): ``couplings`` channel couplings with MLPs."""

    def __init__(self, input_shape=(1, 28, 28), scales=2, hidden=64, couplings=8, depth=2, batch_norm=False,
                 logit_alpha=LOGIT_ALPHA, dtype=torch.float32):
        if batch_norm:
            raise NotImplementedError("the torch twin does not implement RealNVP's batch-norm flow")
        if len(input_shape) == 1:
            d = input_shape[0]
            layers = [AffineCoupling(d, MLP(d // 2, 2 * (d - d // 2), hidden, depth), i % 2, form="exp")
                      for i in range(couplings)]
            super().__init__(input_shape, Identity(), [FlowSequence(layers)])
        else:
            c, h, w = input_shape
            levels = []
            for scale in range(scales):
                last = scale == scales - 1
                layers = [CheckerboardCoupling(c, ConvNet(c, 2 * c, hidden), i % 2) for i in range(4 if last else 3)]
                if not last:
                    layers.append(Squeeze())
                    c, h, w = 4 * c, h // 2, w // 2
                    layers += [AffineCoupling(c, ConvNet(c // 2, 2 * (c - c // 2), hidden), i % 2, form="exp")
                               for i in range(3)]
                    c //= 2
                levels.append(FlowSequence(layers))
            super().__init__(input_shape, Logit(logit_alpha), levels)
        self.to(dtype)


class NICE(FlowModel):
    """``couplings`` additive couplings with ReLU MLPs (alternating halves), a diagonal scaling, logistic prior."""

    def __init__(self, input_shape=(1, 28, 28), couplings=4, hidden=1000, depth=5, prior="logistic",
                 dtype=torch.float32):
        d = math.prod(input_shape)
        layers = [AdditiveCoupling(d, MLP(d // 2, d - d // 2, hidden, depth), i % 2) for i in range(couplings)]
        layers.append(NiceScaling(d))
        super().__init__(input_shape, Flatten(input_shape), [FlowSequence(layers)], prior=prior)
        self.to(dtype)


MODELS = {"glow": Glow, "realnvp": RealNVP, "nice": NICE}


def build(config, dtype=torch.float32):
    """A model from a plain config dict (nflow's ``model.config``: ``{"model": "glow", ...}``)."""
    cfg = dict(config)
    kind = cfg.pop("model")
    cfg["input_shape"] = tuple(cfg["input_shape"])
    return MODELS[kind](**cfg, dtype=dtype)
