"""Moving an image along an attribute in latent space (Kingma & Dhariwal 2018, §5, "z + z_smile").

A flow's latent is an invertible code of the image, so an attribute can be given a direction there: the mean
latent of images that have it minus the mean latent of images that do not,

    d = mean_{x ∈ with} z(x) - mean_{x ∈ without} z(x),

and an image is moved along it by decoding x_α = f⁻¹(z(x) + α·d). α = 0 gives the image back (up to the
round-trip rounding), α > 0 adds the attribute, α < 0 takes it away. For a multi-scale model the latent is the
list of every level's latent (as ``encode`` returns it) and d is a list of the same shapes. The means are taken
in float64.
"""
import warnings

import numpy as np

from nflow.backend import to_numpy
from nflow.train.modes import evaluating

ENCODE_BATCH = 500   # images encoded at a time (the means need every latent, not every activation)


def _as_list(latents):
    return list(latents) if isinstance(latents, (list, tuple)) else [latents]


def _check_images(model, x, what):
    x = np.asarray(x)
    if x.ndim != len(model.input_shape) + 1 or tuple(x.shape[1:]) != tuple(model.input_shape):
        raise ValueError(f"nflow.latent: {what} must be images of shape (N, {', '.join(map(str, model.input_shape))})"
                         f", got {x.shape}")
    if len(x) == 0:
        raise ValueError(f"nflow.latent: {what} holds no images; the mean latent of an empty set is undefined")
    return x


def mean_latent(model, x, batch_size=ENCODE_BATCH):
    """The mean of ``model.encode`` over the images ``x`` (N, C, H, W), per latent, as float64 arrays (a list)."""
    x = _check_images(model, x, "x")
    sums = None
    with evaluating(model):
        for start in range(0, len(x), batch_size):
            latents = [to_numpy(z).astype(np.float64) for z in _as_list(model.encode(x[start:start + batch_size]))]
            batch_sums = [z.sum(axis=0) for z in latents]
            sums = batch_sums if sums is None else [s + b for s, b in zip(sums, batch_sums)]
    return [s / len(x) for s in sums]


def attribute_direction(model, x_with, x_without, batch_size=ENCODE_BATCH):
    """d = mean latent of ``x_with`` - mean latent of ``x_without`` (images in the model's input range, such as
    dequantized pixels in [0, 1)). A list of float64 arrays shaped as the model's latents (one array for a model
    with one latent, as ``encode`` returns)."""
    x_with = _check_images(model, x_with, "x_with")
    x_without = _check_images(model, x_without, "x_without")
    direction = [a - b for a, b in zip(mean_latent(model, x_with, batch_size),
                                       mean_latent(model, x_without, batch_size))]
    return direction if len(direction) > 1 else direction[0]


def manipulate(model, x, direction, alphas):
    """Decoded f⁻¹(z(x) + α·d) for every image of ``x`` (N, C, H, W) and every α of ``alphas``: an array
    (N, len(alphas), C, H, W). ``direction`` as :func:`attribute_direction` returns it."""
    x = _check_images(model, x, "x")
    alphas = np.asarray(alphas, dtype=np.float64).reshape(-1)
    if len(alphas) == 0 or not np.all(np.isfinite(alphas)):
        raise ValueError(f"nflow.latent.manipulate: alphas must be one or more finite numbers, got {alphas}")
    direction = _as_list(direction)
    with evaluating(model):
        latents = _as_list(model.encode(x))
        if len(direction) != len(latents) or any(d.shape != z.shape[1:] for d, z in zip(direction, latents)):
            raise ValueError("nflow.latent.manipulate: the direction's shapes "
                             f"{[tuple(np.shape(d)) for d in direction]} do not match the model's latents "
                             f"{[tuple(z.shape[1:]) for z in latents]}")
        latents = [to_numpy(z).astype(np.float64) for z in latents]
        with np.errstate(over="ignore", invalid="ignore"):   # reported below, with the count
            columns = [to_numpy(model.decode([(z + alpha * d).astype(model.dtype)
                                              for z, d in zip(latents, direction)])) for alpha in alphas]
    out = np.stack(columns, axis=1)
    bad = ~np.isfinite(out).reshape(out.shape[0], out.shape[1], -1).all(axis=2)
    if bad.any():
        worst = ", ".join(f"{alpha:g}" for alpha in alphas[bad.any(axis=0)])
        warnings.warn(f"nflow.latent.manipulate: {int(bad.sum())} of {bad.size} images hold NaN or inf (the inverse "
                      f"overflowed at α = {worst}; a smaller |α| stays nearer the data)", RuntimeWarning, stacklevel=2)
    return out
