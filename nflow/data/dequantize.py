"""Uniform dequantization: turning 8-bit pixels into a continuous variable a density model can fit.

A density on [0, 1)^D fitted to discrete values could put infinite density on them. Adding uniform noise,

    x = (k + u) / n_bins,   k ∈ {0, …, n_bins-1},  u ~ U[0, 1)^D,

spreads each value over its own bin, and the continuous model's log-likelihood on x is then a lower bound on
the discrete model's log-probability of k (Theis, van den Oord & Bethge 2016, §3.1). See
:func:`nflow.bits_per_dim` for the matching code length.
"""
import numpy as np

N_BINS_8BIT = 256


def uniform_part(rng, shape, part=(0, 1)):
    """Part ``index`` of ``count`` equal parts (along the first axis) of ``rng.random((count·n, ...))``, where
    ``shape = (n, ...)`` is the shape of one part; ``rng`` is left as if the whole array had been drawn.

    This is how the ranks of a distributed run share one global batch's noise: each draws only its own part,
    yet every rank's Generator stays in step with a single process that drew all of it. A float64 draw takes
    exactly one 64-bit output of the bit generator, so skipping ``k`` values is ``bit_generator.advance(k)``
    (PCG64, the default, and Philox have it); a generator without ``advance`` draws everything and slices.
    """
    index, count = part
    per_part = int(np.prod(shape))
    bit_generator = getattr(rng, "bit_generator", None)
    if not hasattr(bit_generator, "advance"):
        return rng.random((count * shape[0],) + tuple(shape[1:]), dtype=np.float64)[index * shape[0]:
                                                                                    (index + 1) * shape[0]]
    bit_generator.advance(index * per_part)
    u = rng.random(shape, dtype=np.float64)
    bit_generator.advance((count - index - 1) * per_part)
    return u


def dequantize(images, rng, n_bins=N_BINS_8BIT, dtype=np.float32, part=(0, 1)):
    """``(images + u) / n_bins`` with ``u ~ U[0, 1)`` drawn from the NumPy Generator ``rng``; values in [0, 1).
    ``part=(index, count)``: ``images`` is part ``index`` of a batch of ``count`` equal parts, and ``u`` is its
    part of the noise of that whole batch (:func:`uniform_part`; a distributed run's rank r of N).

    ``images``: an integer array with values in 0..n_bins-1 (any shape; e.g. uint8 (N, 1, 28, 28)).
    The noise is drawn in float64, one value per element in C order, so a seeded ``rng`` gives the same
    result on every machine. Rounding to ``dtype`` can carry (k + u) / n_bins with u close to 1 up to the next
    bin's edge (k + 1) / n_bins (float32 has no number between them nearby); such values are set to the
    largest ``dtype`` number below that edge, so floor(x · n_bins) = k always holds and x < 1.
    """
    images = np.asarray(images)
    if images.dtype.kind not in "ui":
        raise TypeError(f"dequantize: expects integer pixel values (e.g. uint8), got dtype {images.dtype}")
    if images.size and (images.min() < 0 or images.max() >= n_bins):
        raise ValueError(f"dequantize: values must lie in 0..{n_bins - 1}, got {images.min()}..{images.max()}")
    u = uniform_part(rng, images.shape, part)
    k = images.astype(np.float64)
    x = ((k + u) / n_bins).astype(dtype)
    upper_edge = ((k + 1) / n_bins).astype(dtype)  # exact in float32 for n_bins a power of two up to 2^24
    return np.minimum(x, np.nextafter(upper_edge, np.zeros((), dtype=dtype)))


def quantize(x, n_bins=N_BINS_8BIT):
    """The inverse direction for images in [0, 1] (samples, dequantized data): floor(x · n_bins) as uint8,
    clipped to 0..n_bins-1 (1.0 maps to the top bin; values outside [0, 1] are clamped, NaN maps to 0)."""
    if n_bins > N_BINS_8BIT:
        raise ValueError(f"quantize: uint8 holds at most {N_BINS_8BIT} bins, got n_bins={n_bins}")
    x = np.clip(np.nan_to_num(np.asarray(x, dtype=np.float64), nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    return np.minimum(np.floor(x * n_bins), n_bins - 1).astype(np.uint8)


def is_quantized(data):
    """Whether ``data`` holds integer pixel values, to be dequantized, rather than continuous values."""
    return np.asarray(data).dtype.kind in "ui"


def default_n_bins(data):
    """The quantisation levels of ``data`` for bits/dim when none are given: 256 for integer (8-bit) pixels,
    1 for continuous values (bits/dim is then the density's code length per dimension)."""
    return N_BINS_8BIT if is_quantized(data) else 1


def to_continuous(batch, rng, n_bins, dtype, part=(0, 1)):
    """A batch as a density model takes it: integer pixels dequantized with noise from ``rng`` (see
    :func:`dequantize`; ``part`` as there), continuous values cast to ``dtype``."""
    return dequantize(batch, rng, n_bins, dtype, part) if is_quantized(batch) else np.asarray(batch).astype(dtype)
