"""Class-conditional Glow (``Glow(..., num_classes=K)``, issue 13): log p(x | y) against the unconditional
model plus the difference of the two top-prior Gaussians computed here in NumPy; gradients of the label map and
the classification head against central differences; ``predict`` against Bayes' rule over K direct
``log_prob(x, y=k)`` calls; conditional sampling; state dicts; bad labels refused. Each for both forms of the
label prior, (m_y, s_y) per channel (``label_prior="channel"``) and per channel and position (``"position"``)."""
import importlib
import math
from unittest import mock

import numpy as np
import pytest

import nflow
from flow_helpers import gradcheck, perturb
from nflow.backend import to_numpy
from nflow.models import Glow
from nflow.tensor import no_grad

gradcheck_module = importlib.import_module("nflow.gradcheck")
SHAPE = (1, 8, 8)
K = 3
FORMS = ("channel", "position")


def conditional(seed=0, dtype=np.float64, class_weight=0.0, levels=2, label_prior="channel"):
    nflow.seed(seed)
    model = Glow(SHAPE, levels=levels, steps=1, hidden=4, num_classes=K, class_weight=class_weight,
                 label_prior=label_prior, dtype=dtype)
    return perturb(model, np.random.default_rng(seed)).eval()


def class_mean_and_log_std(model, label_prior, top_shape, y):
    """(m_y, s_y) for the labels y, read off the label map's weight (2P, K) as it is laid out: rows 0..P-1 the
    mean, P..2P-1 the log-std, with P = C (channel form; broadcast over H, W here) or P = C·H·W (position form,
    channel-major, then row, then column)."""
    c, h, w = top_shape
    shape = (c, 1, 1) if label_prior == "channel" else (c, h, w)
    weight = to_numpy(model.label_prior.embed.weight.data)
    p = shape[0] * shape[1] * shape[2]
    assert weight.shape == (2 * p, K)
    mean = weight[:p].T[y].reshape((len(y),) + shape)
    log_std = weight[p:].T[y].reshape((len(y),) + shape)
    return np.broadcast_to(mean, (len(y), c, h, w)), np.broadcast_to(log_std, (len(y), c, h, w))


def draw(rng, n, dtype=np.float64):
    return rng.uniform(0.02, 0.98, size=(n,) + SHAPE).astype(dtype)


def gaussian_logpdf(z, mean, log_std):
    """log N(z; mean, exp(log_std)²) summed per sample, in float64, written out."""
    u = (z - mean) * np.exp(-log_std)
    return (-0.5 * u ** 2 - log_std - 0.5 * math.log(2 * math.pi)).reshape(len(z), -1).sum(axis=1)


@pytest.mark.parametrize("label_prior", FORMS)
def test_log_prob_given_y_is_the_unconditional_one_plus_the_change_of_top_prior(label_prior):
    rng = np.random.default_rng(0)
    model = conditional(label_prior=label_prior)
    plain = Glow(SHAPE, levels=2, steps=1, hidden=4, dtype=np.float64).eval()
    state = model.state_dict()
    plain.load_state_dict({k: v for k, v in state.items() if not k.startswith(("label_prior.", "class_head."))})
    x, y = draw(rng, 5), np.array([0, 1, 2, 2, 0])
    eps = plain.encode(x)[-1]
    mean, log_std = class_mean_and_log_std(model, label_prior, eps.shape[1:], y)
    assert np.abs(to_numpy(model.label_prior.embed.weight.data)).min() > 0   # perturbed: each class its own prior
    if label_prior == "position":   # a template: the class mean and log-std differ from position to position
        assert np.ptp(mean, axis=(2, 3)).min() > 0 and np.ptp(log_std, axis=(2, 3)).min() > 0
    expected = (to_numpy(plain.log_prob(x).data) + gaussian_logpdf(eps, mean, log_std)
                - gaussian_logpdf(eps, 0.0, 0.0))
    np.testing.assert_allclose(to_numpy(model.log_prob(x, y).data), expected, rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("label_prior", FORMS)
def test_a_fresh_conditional_glow_is_the_unconditional_one(label_prior):
    """The label map starts at zero: p(x | y) = p(x) for every y, and the same parameters draw the same samples."""
    rng = np.random.default_rng(1)
    nflow.seed(3)
    cond = Glow(SHAPE, levels=2, steps=1, hidden=4, num_classes=K, label_prior=label_prior, dtype=np.float64).eval()
    nflow.seed(3)
    plain = Glow(SHAPE, levels=2, steps=1, hidden=4, dtype=np.float64).eval()
    x = draw(rng, 4)
    for label in range(K):
        np.testing.assert_array_equal(to_numpy(cond.log_prob(x, np.full(4, label)).data),
                                      to_numpy(plain.log_prob(x).data))
    np.testing.assert_allclose(cond.sample(4, seed=2, y=1), plain.sample(4, seed=2), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("class_weight, label_prior", [(0.0, "channel"), (0.7, "channel"), (0.7, "position")])
def test_gradients_of_the_label_map_and_the_head_match_central_differences(class_weight, label_prior):
    rng = np.random.default_rng(2)
    model = conditional(class_weight=class_weight, label_prior=label_prior)
    x, y = nflow.tensor(draw(rng, 3), requires_grad=True), np.array([2, 0, 1])
    params = [model.label_prior.embed.weight] + (list(model.class_head.parameters()) if class_weight else [])
    with mock.patch.object(gradcheck_module, "MAX_ELEMENTWISE", 32):
        assert gradcheck(lambda x, *p: model.log_prob(x, y), [x] + params[:1])
        assert gradcheck(lambda x, *p: model.training_loss(x, y)[0], [x] + params)
    assert all(p.grad is not None for p in params)


def test_training_loss_is_the_nll_plus_the_weighted_cross_entropy():
    rng = np.random.default_rng(3)
    model = conditional(class_weight=0.7)
    x, y = draw(rng, 4), np.array([0, 1, 2, 1])
    objective, parts = model.training_loss(x, y)
    nll = -to_numpy(model.log_prob(x, y).data).mean()
    eps = model.encode(x)[-1]
    w, b = to_numpy(model.class_head.linear.weight.data), to_numpy(model.class_head.linear.bias.data)
    logits = eps.mean(axis=(2, 3)) @ w.T + b
    ce = np.mean(np.log(np.exp(logits).sum(axis=1)) - logits[np.arange(4), y])
    assert parts["nll"] == pytest.approx(nll, rel=1e-12)
    assert parts["class_ce"] == pytest.approx(ce, rel=1e-12)
    assert float(to_numpy(objective.data)) == pytest.approx(nll + 0.7 * ce, rel=1e-12)


@pytest.mark.parametrize("levels, label_prior", [(1, "channel"), (2, "channel"), (1, "position"), (2, "position")])
def test_predict_is_bayes_rule_over_the_class_likelihoods(levels, label_prior):
    rng = np.random.default_rng(4)
    model = conditional(levels=levels, label_prior=label_prior)
    x = draw(rng, 6)
    direct = np.stack([to_numpy(model.log_prob(x, np.full(6, k)).data) for k in range(K)], axis=1)
    posterior = model.predict(x)
    assert posterior.shape == (6, K) and posterior.dtype == np.float64
    np.testing.assert_allclose(posterior.sum(axis=1), 1.0, rtol=1e-14)
    expected = np.exp(direct - direct.max(axis=1, keepdims=True))
    np.testing.assert_allclose(posterior, expected / expected.sum(axis=1, keepdims=True), rtol=1e-9, atol=1e-14)
    prior = np.array([0.5, 0.3, 0.2])
    weighted = expected * prior
    np.testing.assert_allclose(model.predict(x, class_prior=prior), weighted / weighted.sum(axis=1, keepdims=True),
                               rtol=1e-9, atol=1e-14)
    with pytest.raises(ValueError, match="class_prior must be 3 probabilities"):
        model.predict(x, class_prior=[0.5, 0.5])


@pytest.mark.parametrize("label_prior", FORMS)
def test_sampling_given_a_class_draws_from_that_class_prior(label_prior):
    """At temperature 0 the top latent of a sample is the class mean m_y (the other latents at their means): encoding
    the sample gives m_y back (broadcast over space in the channel form); samples for several labels at once match
    one label at a time."""
    model = conditional(seed=5, label_prior=label_prior)
    for label in range(K):
        with no_grad():   # the walk itself: a perturbed model's mode may lie a little outside [0, 1]
            eps = to_numpy(model.forward_latents(nflow.tensor(model.sample(2, temperature=0.0, y=label)))[0][-1].data)
        mean, _ = class_mean_and_log_std(model, label_prior, eps.shape[1:], np.full(2, label))
        np.testing.assert_allclose(eps, mean, atol=1e-9)
    mixed = model.sample(3, seed=7, y=np.array([2, 0, 1]))
    one = model.sample(3, seed=7, y=0)
    np.testing.assert_array_equal(mixed[1], one[1])
    assert not np.allclose(mixed[0], one[0])
    np.testing.assert_array_equal(model.sample(4, seed=7), model.sample(4, seed=7, y=np.array([0, 1, 2, 0])))


@pytest.mark.parametrize("label_prior", FORMS)
def test_state_dict_round_trip_and_the_unconditional_state_dict_unchanged(label_prior):
    rng = np.random.default_rng(6)
    source = conditional(seed=6, dtype=np.float32, class_weight=0.5, label_prior=label_prior)
    target = Glow(SHAPE, levels=2, steps=1, hidden=4, num_classes=K, class_weight=0.5, label_prior=label_prior).eval()
    target.load_state_dict(source.state_dict())
    x, y = draw(rng, 3, np.float32), np.array([1, 1, 2])
    np.testing.assert_array_equal(to_numpy(target.log_prob(x, y).data), to_numpy(source.log_prob(x, y).data))
    np.testing.assert_array_equal(target.predict(x), source.predict(x))
    plain = Glow(SHAPE, levels=2, steps=1, hidden=4)
    assert set(source.state_dict()) - set(plain.state_dict()) == {
        "label_prior.embed.weight", "class_head.linear.weight", "class_head.linear.bias"}
    assert not any(k.startswith(("label_prior", "class_head")) for k in plain.state_dict())
    assert "num_classes" not in plain.config and source.config["num_classes"] == K
    assert "label_prior" not in plain.config and source.config["label_prior"] == label_prior
    # the channel form's label map is (2C, K) = (16, 3) as before; the position form's (2·C·H·W, K) = (64, 3)
    assert source.state_dict()["label_prior.embed.weight"].shape == {"channel": (16, K), "position": (64, K)}[
        label_prior]
    other = Glow(SHAPE, levels=2, steps=1, hidden=4, num_classes=K, class_weight=0.5,
                 label_prior=[f for f in FORMS if f != label_prior][0])
    with pytest.raises(ValueError, match="label_prior.embed.weight is float32"):
        other.load_state_dict(source.state_dict())


@pytest.mark.parametrize("labels, error, message", [
    (None, ValueError, r"class-conditional \(3 classes\) and needs the labels y, an int array of shape \(2,\)"),
    (np.array([0, 1, 2]), ValueError, r"expected labels of shape \(2,\), one per example, got \(3,\)"),
    (np.array([[0, 1]]), ValueError, r"expected labels of shape \(2,\)"),
    (np.array([0, 3]), ValueError, r"labels must lie in 0..2 \(3 classes\); 1 do not, such as 3"),
    (np.array([-1, 0]), ValueError, r"labels must lie in 0..2"),
    (np.array([0.0, 1.0]), TypeError, r"labels must be integers 0..2, got dtype float64"),
])
def test_bad_labels_are_refused(labels, error, message):
    model = conditional()
    x = draw(np.random.default_rng(7), 2)
    with pytest.raises(error, match=message):
        model.log_prob(x, labels)
    if labels is not None:
        with pytest.raises(error, match=message.replace("(2,)", "(2,)")):
            model.training_loss(x, labels)


def test_an_unconditional_glow_refuses_labels_and_bad_arguments_are_refused():
    plain = Glow(SHAPE, levels=1, steps=1, hidden=4, dtype=np.float64)
    x = draw(np.random.default_rng(8), 2)
    with pytest.raises(ValueError, match="unconditional .* takes no labels"):
        plain.log_prob(x, np.array([0, 1]))
    with pytest.raises(ValueError, match="unconditional .* takes no labels"):
        plain.sample(2, y=1)
    for method in (plain.predict, plain.class_log_likelihoods):
        with pytest.raises(ValueError, match="unconditional"):
            method(x)
    with pytest.raises(ValueError, match="num_classes must be an integer ≥ 2"):
        Glow(SHAPE, levels=1, steps=1, hidden=4, num_classes=1)
    with pytest.raises(ValueError, match="pass num_classes too"):
        Glow(SHAPE, levels=1, steps=1, hidden=4, class_weight=1.0)
    with pytest.raises(ValueError, match="class_weight must be a finite number ≥ 0"):
        Glow(SHAPE, levels=1, steps=1, hidden=4, num_classes=2, class_weight=-1.0)
    with pytest.raises(ValueError, match=r"label_prior='position' chooses the form .* pass num_classes too"):
        Glow(SHAPE, levels=1, steps=1, hidden=4, label_prior="position")
    with pytest.raises(ValueError, match=r"label_prior must be one of \('channel', 'position'\), got 'pixel'"):
        Glow(SHAPE, levels=1, steps=1, hidden=4, num_classes=2, label_prior="pixel")
    assert Glow(SHAPE, levels=1, steps=1, hidden=4, num_classes=2).config["label_prior"] == "channel"
    model = conditional()
    with pytest.raises(ValueError, match=r"labels must lie in 0..2"):
        model.sample(2, y=5)
    with pytest.raises(ValueError, match=r"expected labels of shape \(2,\)"):
        model.sample(2, y=np.array([0, 1, 2]))
