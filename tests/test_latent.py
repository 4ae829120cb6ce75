"""Attribute vectors (``nflow.latent``, Glow §5): the direction is the difference of two mean latents, computed
here in NumPy; α = 0 gives the image back; moving by α shifts the latent by α·d; bad input refused."""
import numpy as np
import pytest

import nflow
from flow_helpers import float32_rtol, perturb
from nflow.latent import attribute_direction, manipulate, mean_latent
from nflow.models import Glow, RealNVP

SHAPE = (1, 8, 8)


def model_of(levels, dtype, num_classes=None, seed=0):
    nflow.seed(seed)
    model = Glow(SHAPE, levels=levels, steps=2, hidden=4, num_classes=num_classes, dtype=dtype)
    return perturb(model, np.random.default_rng(seed)).eval()


def images(rng, n, dtype):
    return rng.uniform(0.05, 0.95, size=(n,) + SHAPE).astype(dtype)


@pytest.mark.parametrize("levels", [1, 2])
def test_the_direction_is_the_difference_of_the_mean_latents(levels):
    rng = np.random.default_rng(0)
    model = model_of(levels, np.float64)
    a, b = images(rng, 7, np.float64), images(rng, 5, np.float64) * 0.5
    direction = attribute_direction(model, a, b, batch_size=3)   # batches of 3: the means add up across batches
    za, zb = model.encode(a), model.encode(b)
    za, zb = (za, zb) if levels > 1 else ([za], [zb])
    expected = [x.mean(axis=0) - y.mean(axis=0) for x, y in zip(za, zb)]
    got = direction if levels > 1 else [direction]
    assert len(got) == levels and [d.shape for d in got] == [z.shape[1:] for z in za]
    for d, e in zip(got, expected):
        np.testing.assert_allclose(d, e, rtol=1e-12, atol=1e-12)
        assert np.abs(d).max() > 1e-3   # the two sets differ: so does the direction


def test_two_identical_sets_give_the_zero_direction():
    x = images(np.random.default_rng(1), 6, np.float32)
    for d in attribute_direction(model_of(2, np.float32), x, x.copy()):
        assert not d.any()


@pytest.mark.parametrize("levels", [1, 2])
def test_alpha_zero_gives_the_image_back_and_alpha_moves_the_latent_by_alpha_d(levels):
    rng = np.random.default_rng(2)
    model = model_of(levels, np.float32, num_classes=3)
    x = images(rng, 3, np.float32)
    direction = attribute_direction(model, images(rng, 4, np.float32), images(rng, 4, np.float32) * 0.9)
    out = manipulate(model, x, direction, [0.0, 0.5])
    assert out.shape == (3, 2) + SHAPE and out.dtype == np.float32
    depth = len(model.flow_layers())
    np.testing.assert_allclose(out[:, 0], x, rtol=0, atol=float32_rtol(depth))
    assert np.abs(out[:, 1] - x).max() > 10 * float32_rtol(depth)   # α = 0.5 moves the picture
    # in float64: the latent of the α column is z + α·d
    model64 = model_of(levels, np.float64, num_classes=3)
    x64 = x.astype(np.float64)
    d64 = attribute_direction(model64, images(rng, 4, np.float64), images(rng, 4, np.float64) * 0.9)
    moved = manipulate(model64, x64, d64, [0.3])[:, 0]
    with nflow.no_grad():
        latents, _ = model64.forward_latents(nflow.tensor(moved))
    d64 = d64 if levels > 1 else [d64]
    z = model64.encode(x64)
    z = z if levels > 1 else [z]
    for got, z0, d in zip(latents, z, d64):
        np.testing.assert_allclose(got.numpy(), z0 + 0.3 * d, rtol=1e-9, atol=1e-9)


def test_a_single_latent_model_and_bad_input():
    nflow.seed(0)
    model = RealNVP((2,), hidden=4, couplings=2, dtype=np.float64).eval()
    points = np.random.default_rng(3).normal(size=(5, 2))
    d = attribute_direction(model, points, points[:2])
    assert isinstance(d, np.ndarray) and d.shape == (2,)
    assert manipulate(model, points, d, [0.0, 1.0]).shape == (5, 2, 2)
    glow = model_of(2, np.float32)
    x = images(np.random.default_rng(4), 2, np.float32)
    with pytest.raises(ValueError, match=r"x_without must be images of shape \(N, 1, 8, 8\), got \(2, 8, 8\)"):
        attribute_direction(glow, x, x[:, 0])
    with pytest.raises(ValueError, match="x_with holds no images"):
        attribute_direction(glow, x[:0], x)
    with pytest.raises(ValueError, match="alphas must be one or more finite numbers"):
        manipulate(glow, x, attribute_direction(glow, x, x), [np.nan])
    with pytest.raises(ValueError, match="do not match the model's latents"):
        manipulate(glow, x, [np.zeros((4, 4, 4))], [1.0])
    assert [m.shape for m in mean_latent(glow, x)] == [(2, 4, 4), (8, 2, 2)]


def test_an_overflowing_inverse_is_reported_with_its_count_not_silently():
    rng = np.random.default_rng(5)
    model = model_of(2, np.float32)
    x = images(rng, 2, np.float32)
    direction = [np.full(z.shape[1:], 1e30, dtype=np.float64) for z in model.encode(x)]
    with pytest.warns(RuntimeWarning, match=r"4 of 4 images hold NaN or inf \(the inverse overflowed at α = 1, 2"):
        out = manipulate(model, x, direction, [1.0, 2.0])
    assert not np.isfinite(out).all()
