"""Per-channel affine flows with a closed-form log-det: NICE's diagonal scaling and RealNVP's batch-norm flow.

(Glow's ActNorm, the third of the family, has a fused kernel and its own file, ``actnorm.py``.)
"""
import numpy as np

import nflow.functional as F
from nflow.backend import to_numpy
from nflow.flows.base import Flow, check_input, zero_logdet
from nflow.nn import init
from nflow.nn.module import Parameter, new_array
from nflow.tensor import Tensor, no_grad

BATCHNORM_EPS = 1e-5     # variance floor of the batch-norm flow (RealNVP uses 1e-4..1e-5)
BATCHNORM_MOMENTUM = 0.1  # running averages: r ← (1 - m) r + m · batch statistic


def _pixels(x):
    p = 1
    for n in x.shape[2:]:
        p *= n
    return p


class NiceScaling(Flow):
    """NICE's diagonal scaling layer (Dinh et al. 2014, §3.3): y = x · exp(s), log|det| = Σ s.

    Works on (N, D) vectors; ``s`` starts at 0 (the identity).
    """

    def __init__(self, features, dtype=np.float32):
        super().__init__()
        self.features = features
        self.log_scale = Parameter(new_array(init.zeros((features,), dtype)))

    def forward(self, x):
        check_input(x, "NiceScaling", expected_ndim=2, channels=self.features)
        logdet = F.sum(self.log_scale) + zero_logdet(x)
        return x * F.exp(self.log_scale), logdet

    def inverse(self, y):
        check_input(y, "NiceScaling", expected_ndim=2, channels=self.features)
        logdet = -F.sum(self.log_scale) + zero_logdet(y)
        return y * F.exp(-self.log_scale), logdet


class BatchNormFlow(Flow):
    """RealNVP's batch normalisation as a flow (Dinh et al. 2017, §3.7, eq. 9):

        y = (x - μ) / sqrt(σ² + ε) · exp(log_γ) + β,
        log|det| = P · Σ_c [log_γ_c - ½ log(σ²_c + ε)]    (P = pixels per channel)

    In training μ, σ² are the batch's statistics (and the log-det treats them as constants of the map, as the
    paper does); running averages are updated and used in eval mode and by ``inverse``.
    """

    invertible_in_training = False  # the inverse uses the running averages, not the batch's statistics

    def __init__(self, channels, dtype=np.float32, momentum=BATCHNORM_MOMENTUM, eps=BATCHNORM_EPS):
        super().__init__()
        self.channels, self.momentum, self.eps = channels, momentum, eps
        self.log_gamma = Parameter(new_array(init.zeros((channels,), dtype)))
        self.beta = Parameter(new_array(init.zeros((channels,), dtype)))
        self.register_buffer("running_mean", new_array(np.zeros((channels,), dtype)))
        self.register_buffer("running_var", new_array(np.ones((channels,), dtype)))

    def _after_load_state(self):
        """Loaded running variances must be positive: the eval-mode log-det takes log(running_var + eps)."""
        if not bool((self.running_var >= 0).all()):
            raise ValueError(f"BatchNormFlow: the loaded running_var has negative entries "
                             f"({to_numpy(self.running_var).tolist()}); a variance is ≥ 0")

    def _shape(self, ndim):
        return (1, self.channels) + (1,) * (ndim - 2)

    def _stats(self, x):
        axes = (0,) + tuple(range(2, x.ndim))
        if not self.training:
            return Tensor(self.running_mean), Tensor(self.running_var)
        mean = F.mean(x, axis=axes)
        var = F.mean((x - F.reshape(mean, self._shape(x.ndim))) ** 2.0, axis=axes)
        with no_grad():
            m = x.dtype.type(self.momentum)
            self.running_mean = (1 - m) * self.running_mean + m * mean.data
            self.running_var = (1 - m) * self.running_var + m * var.data
        return mean, var

    def forward(self, x):
        check_input(x, "BatchNormFlow", expected_ndim=(2, 4), channels=self.channels)
        mean, var = self._stats(x)
        log_std = 0.5 * F.log(var + self.eps)
        shape = self._shape(x.ndim)
        y = (x - F.reshape(mean, shape)) * F.reshape(F.exp(self.log_gamma - log_std), shape) + F.reshape(self.beta, shape)
        logdet = F.sum(self.log_gamma - log_std) * float(_pixels(x))
        return y, logdet + zero_logdet(x)

    def inverse(self, y):
        check_input(y, "BatchNormFlow", expected_ndim=(2, 4), channels=self.channels)
        mean, var = Tensor(self.running_mean), Tensor(self.running_var)
        log_std = 0.5 * F.log(var + self.eps)
        shape = self._shape(y.ndim)
        x = (y - F.reshape(self.beta, shape)) * F.reshape(F.exp(log_std - self.log_gamma), shape) + F.reshape(mean, shape)
        logdet = F.sum(log_std - self.log_gamma) * float(_pixels(y))
        return x, logdet + zero_logdet(y)
