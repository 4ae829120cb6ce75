"""Conventions that any choice would keep a valid bijection, pinned without PyTorch (issue 19).

Which half of a network's output is the log-scale and which the shift, which half of the split prior's output is
the mean and which the log standard deviation, in which order ActNorm shifts and scales: swapping any of these
still gives an invertible map with a correct log-det, so the property tests pass either way. Only agreement with
the papers' code fixes them; the PyTorch parity tests check that, and these pin it where torch is absent, by
setting the networks' outputs to known constants and computing the expected output by hand.
"""
import numpy as np

import nflow
from nflow.flows import ActNorm, AffineCoupling, GlowNet, LearnedStandardise, Split

C, H, W = 4, 2, 2


def constant_output(net, values):
    """Make a GlowNet / ZeroConv2d output ``values`` (one per channel) everywhere: its last conv has zero weight
    and zero log-scale at initialisation, so its bias is its output."""
    last = net.conv3 if isinstance(net, GlowNet) else net
    last.conv.bias.data[...] = np.asarray(values, dtype=last.conv.bias.dtype).reshape(last.conv.bias.shape)
    return net


def test_split_prior_outputs_mean_first_then_log_std():
    layer = Split(C, dtype=np.float64)
    mean, log_std = np.array([0.5, -1.0]), np.array([0.3, -0.2])
    constant_output(layer.prior_net, np.concatenate([mean, log_std]))
    x = np.random.default_rng(0).standard_normal((3, C, H, W))
    y, logdet = layer.forward(nflow.tensor(x, dtype=np.float64))
    z2 = x[:, C // 2:]
    expected = (z2 - mean[None, :, None, None]) * np.exp(-log_std)[None, :, None, None]
    np.testing.assert_allclose(y.numpy()[:, C // 2:], expected, rtol=1e-12)
    np.testing.assert_allclose(y.numpy()[:, :C // 2], x[:, :C // 2], rtol=0)
    np.testing.assert_allclose(logdet.numpy(), -H * W * log_std.sum(), rtol=1e-12)


def test_affine_coupling_net_outputs_log_scale_first_then_shift():
    # Glow's form: s = sigmoid(h + 2), y_b = x_b · s + t, with h the first C_b outputs and t the last C_b
    net = GlowNet(C // 2, C, 4, dtype=np.float64)
    h, t = np.array([0.4, -0.6]), np.array([1.5, -0.25])
    constant_output(net, np.concatenate([h, t]))
    layer = AffineCoupling(C, net, "channel", 0, form="sigmoid", dtype=np.float64)
    x = np.random.default_rng(1).standard_normal((2, C, H, W))
    y, logdet = layer.forward(nflow.tensor(x, dtype=np.float64))
    s = 1 / (1 + np.exp(-(h + 2.0)))
    expected = x[:, C // 2:] * s[None, :, None, None] + t[None, :, None, None]
    np.testing.assert_allclose(y.numpy()[:, C // 2:], expected, rtol=1e-12)
    np.testing.assert_allclose(y.numpy()[:, :C // 2], x[:, :C // 2], rtol=0)  # parity 0: the first half conditions
    np.testing.assert_allclose(logdet.numpy(), H * W * np.log(s).sum(), rtol=1e-12)


def test_actnorm_adds_the_bias_then_scales():
    layer = ActNorm(2, dtype=np.float64)
    layer.initialised = np.ones((), dtype=np.int8)
    layer.bias.data[...] = [1.0, -2.0]
    layer.log_scale.data[...] = [0.5, -0.1]
    x = np.random.default_rng(2).standard_normal((3, 2, H, W))
    y, logdet = layer.forward(nflow.tensor(x, dtype=np.float64))
    expected = (x + np.array([1.0, -2.0])[None, :, None, None]) * np.exp([0.5, -0.1])[None, :, None, None]
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(logdet.numpy(), H * W * 0.4, rtol=1e-12)


def test_learned_standardise_subtracts_the_mean_then_divides_by_the_scale():
    layer = LearnedStandardise((1, H, W), dtype=np.float64)
    layer.mean.data[...] = 0.7
    layer.log_std.data[...] = 0.2
    x = np.random.default_rng(3).standard_normal((2, 1, H, W))
    y, logdet = layer.forward(nflow.tensor(x, dtype=np.float64))
    np.testing.assert_allclose(y.numpy(), (x - 0.7) * np.exp(-0.2), rtol=1e-12)
    np.testing.assert_allclose(logdet.numpy(), -H * W * 0.2, rtol=1e-12)
