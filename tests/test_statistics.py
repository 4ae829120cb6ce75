"""The statistics nflow reports or relies on, each against an independent computation (issue 19):
evaluation's means and standard errors, bits/dim of continuous data, batch-norm's running averages, and the
distribution of the priors' samples (Kolmogorov-Smirnov and moment tests with a stated false-alarm rate)."""
import math

import numpy as np
import pytest

import nflow
from nflow.flows import BatchNormFlow
from nflow.flows.priors import sample_prior
from nflow.models import NICE, RealNVP
from nflow.train.evaluate import evaluate

# Every distribution test below is seeded, so it is deterministic; were the seed drawn at random, a correct
# sampler would fail it with probability at most FALSE_ALARM (the p-value threshold).
FALSE_ALARM = 1e-3


# ------------------------------------------------------------------------------------------------ evaluation
class KnownDensity:
    """A stand-in model whose log-density is a known function of the input: log p(x) = -Σ x² - 1 per example."""

    def __init__(self):
        self.training = True
        self.modes = []

    def train(self, mode=True):
        self.modes.append(mode)
        self.training = mode

    def log_prob(self, x):
        data = x.numpy().astype(np.float64)
        return nflow.tensor(-(data ** 2).reshape(len(data), -1).sum(axis=1) - 1.0, dtype=np.float64)


@pytest.mark.parametrize("batch_size", [1, 7, 20, 500])  # one batch per example, a partial last batch, exact, one
def test_evaluate_mean_and_standard_error_match_the_closed_form(batch_size):
    rng = np.random.default_rng(0)
    data = rng.standard_normal((20, 2, 3))  # float data: used as it is, n_bins = 1
    log_p = -(data ** 2).reshape(20, -1).sum(axis=1) - 1.0
    model = KnownDensity()
    r = evaluate(model, data, batch_size=batch_size, dtype=np.float64)
    d = 6
    nll, nll_se = -log_p.mean(), log_p.std(ddof=1) / math.sqrt(20)   # the sample std with n - 1, over sqrt(n)
    assert r["n"] == 20 and r["n_nonfinite"] == 0
    assert r["nll"] == pytest.approx(nll, rel=1e-12)
    assert r["nll_se"] == pytest.approx(nll_se, rel=1e-9)
    # continuous data: bits/dim is the code length of the density itself, -log p / (D ln 2), no log2(n_bins) term
    assert r["bpd"] == pytest.approx(nll / (d * math.log(2)), rel=1e-12)
    assert r["bpd_se"] == pytest.approx(nll_se / (d * math.log(2)), rel=1e-9)
    assert model.modes == [False, True] and model.training  # evaluated in eval mode, training mode restored


def test_evaluate_on_8_bit_data_adds_the_bin_width():
    data = np.random.default_rng(1).integers(0, 256, size=(9, 1, 2, 2), dtype=np.uint8)
    r = evaluate(KnownDensity(), data, batch_size=4, dtype=np.float64)
    # bpd = nll / (D ln 2) + log2(256): the discrete images' code length (Theis et al. 2016)
    assert r["bpd"] == pytest.approx(r["nll"] / (4 * math.log(2)) + 8.0, rel=1e-12)
    assert r["bpd_se"] == pytest.approx(r["nll_se"] / (4 * math.log(2)), rel=1e-12)


def test_bits_per_dim_of_continuous_and_discrete_data():
    log_prob, shape = -5.0, (1, 2, 2)
    assert nflow.bits_per_dim(log_prob, shape, n_bins=1) == pytest.approx(5.0 / (4 * math.log(2)), rel=1e-15)
    assert nflow.bits_per_dim(log_prob, shape) == pytest.approx(5.0 / (4 * math.log(2)) + 8.0, rel=1e-15)


# ------------------------------------------------------------------------------------------------ batch norm
@pytest.mark.parametrize("image", [False, True])
def test_batchnorm_running_averages_follow_the_hand_written_update(image):
    rng = np.random.default_rng(2)
    c, momentum = 3, 0.2
    layer = BatchNormFlow(c, dtype=np.float64, momentum=momentum)
    mean, var = np.zeros(c), np.ones(c)
    for step in range(4):
        x = rng.standard_normal((5, c, 2, 3) if image else (5, c)) * (step + 1) + step
        layer.forward(nflow.tensor(x, dtype=np.float64))
        axes = (0, 2, 3) if image else (0,)
        # r <- (1 - m) r + m * batch statistic; the variance is the batch's own (divided by the count, not count - 1)
        mean = (1 - momentum) * mean + momentum * x.mean(axis=axes)
        var = (1 - momentum) * var + momentum * x.var(axis=axes)
    np.testing.assert_allclose(layer.running_mean, mean, rtol=1e-12)
    np.testing.assert_allclose(layer.running_var, var, rtol=1e-12)
    layer.eval()
    before = (layer.running_mean.copy(), layer.running_var.copy())
    layer.forward(nflow.tensor(rng.standard_normal((5, c)) if not image else rng.standard_normal((5, c, 2, 3)),
                               dtype=np.float64))
    np.testing.assert_array_equal(layer.running_mean, before[0])  # eval mode reads them and leaves them alone
    np.testing.assert_array_equal(layer.running_var, before[1])


# ------------------------------------------------------------------------------------------------ priors
def gaussian_cdf(z):
    return 0.5 * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))


def logistic_cdf(z):
    return 1 / (1 + np.exp(-z))


def ks_p_value(samples, cdf):
    """The Kolmogorov-Smirnov statistic of ``samples`` against ``cdf`` and its asymptotic p-value,
    P(D > d) = 2 Σ_k (-1)^(k-1) exp(-2 k² n d²) (Kolmogorov 1933; accurate for n in the thousands)."""
    x = np.sort(np.asarray(samples, dtype=np.float64).ravel())
    n = len(x)
    f = cdf(x)
    d = max(np.max(np.arange(1, n + 1) / n - f), np.max(f - np.arange(n) / n))
    k = np.arange(1, 101)
    return d, float(min(1.0, max(0.0, 2 * np.sum((-1.0) ** (k - 1) * np.exp(-2 * k * k * n * d * d)))))


PRIORS = {"gaussian": (gaussian_cdf, 1.0), "logistic": (logistic_cdf, math.pi ** 2 / 3)}  # CDF, variance at T = 1


@pytest.mark.parametrize("name", list(PRIORS))
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_prior_samples_follow_the_distribution(name, temperature):
    cdf, variance = PRIORS[name]
    z = sample_prior(name, (4000,), np.random.default_rng(3), temperature)
    _, p = ks_p_value(z / temperature, cdf)
    assert p > FALSE_ALARM, f"{name} at T = {temperature}: KS p-value {p:.2e}"
    # moments: mean 0 and variance T²·σ², each within 4.5 standard errors (two-sided false alarm < 1e-5)
    n = z.size
    assert abs(z.mean()) < 4.5 * temperature * math.sqrt(variance / n)
    fourth = {"gaussian": 3.0, "logistic": 4.2}[name] * variance ** 2  # E z⁴ of the standard distribution
    assert abs(z.var() - temperature ** 2 * variance) < 4.5 * temperature ** 2 * math.sqrt((fourth - variance ** 2) / n)


def test_the_ks_test_rejects_a_wrong_scale():
    # the test has power: Gaussian samples with σ = 1.2 fail it at this size
    z = np.random.default_rng(4).standard_normal(4000) * 1.2
    assert ks_p_value(z, gaussian_cdf)[1] < FALSE_ALARM


@pytest.mark.parametrize("prior,cdf", [("gaussian", gaussian_cdf), ("logistic", logistic_cdf)])
def test_model_samples_encode_to_prior_distributed_latents(prior, cdf):
    # sample() decodes latents drawn at temperature T; encoding the samples gives them back, so their
    # distribution is the prior's scaled by T: a check of sample() end to end, not only of its shapes
    nflow.seed(5)
    model = RealNVP((4,), couplings=4, hidden=8, dtype=np.float64) if prior == "gaussian" else \
        NICE((4,), couplings=2, hidden=8, depth=1, input_range=None, dtype=np.float64)
    rng = np.random.default_rng(6)
    for p in model.parameters():  # not the identity: the decoded samples differ from the latents
        p.data = p.data + 0.3 * rng.standard_normal(p.shape)
    temperature = 0.8
    x = model.sample(1000, temperature=temperature, seed=7)
    z = model.encode(x)
    assert np.abs(x - z).max() > 0.1
    _, p_value = ks_p_value(z / temperature, cdf)
    assert p_value > FALSE_ALARM
