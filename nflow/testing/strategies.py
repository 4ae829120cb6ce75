"""hypothesis strategies for people who write their own properties of flows.

    from hypothesis import given
    from nflow.testing import strategies as fst

    @given(x=fst.batches((4,), low=-3, high=3), channels=fst.channels())
    def test_something(x, channels): ...

- :func:`batches`: NumPy batches (N,) + shape with entries in [low, high];
- :func:`images`: dequantized image batches in [0, 1): (k + u) / 256 with k an integer level, u uniform;
- layer hyper-parameters: :func:`channels`, :func:`spatial_sizes`, :func:`image_shapes`, :func:`parities`,
  :func:`coupling_forms`, :func:`masks`, :func:`hidden_widths`, and :func:`coupling_hyperparameters` (all of a
  coupling's at once, as a dict).
"""
import numpy as np

from nflow.testing.optional import require_hypothesis

require_hypothesis()
from hypothesis import strategies as st  # noqa: E402  (after the install hint above)
from hypothesis.extra import numpy as hnp  # noqa: E402

SEED_MAX = 2 ** 32 - 1


def _inside(value, dtype, low, high):
    """``value`` rounded to ``dtype`` and kept in [low, high] (rounding to float32 may step outside)."""
    return np.clip(np.asarray(value, dtype=np.float64), low, high).astype(dtype)


def batches_with_origin(shape, low=-2.0, high=2.0, dtype=np.float64, min_batch=2, max_batch=3,
                        elementwise_limit=256):
    """Like :func:`batches`, but each draw is (x, text): text says how x was drawn, for failure messages."""
    shape, dtype = tuple(shape), np.dtype(dtype)
    low, high = float(low), float(high)

    @st.composite
    def example(draw):
        n = draw(st.integers(min_batch, max_batch), label="batch size")
        full = (n,) + shape
        if int(np.prod(full)) <= elementwise_limit:
            x = draw(hnp.arrays(np.float64, full, elements=st.floats(low, high, allow_nan=False,
                                                                          allow_infinity=False),
                                     fill=st.nothing()), label="x")
            x = _inside(x, dtype, low, high)
            text = f"x of shape {full}, {dtype.name}, entries drawn by hypothesis in [{low}, {high}] =\n" \
                   f"             " + np.array2string(x, precision=17, threshold=10 ** 6, separator=", ").replace(
                       "\n", "\n             ")
            return x, text
        seed = draw(st.integers(0, SEED_MAX), label="x seed")
        x = _inside(np.random.default_rng(seed).uniform(low, high, size=full), dtype, low, high)
        return x, (f"x = numpy.random.default_rng({seed}).uniform({low}, {high}, size={full}).astype({dtype.name}) "
                   f"(min {x.min():.4g}, max {x.max():.4g})")

    return example()


def batches(shape, low=-2.0, high=2.0, dtype=np.float64, min_batch=2, max_batch=3, elementwise_limit=256):
    """NumPy arrays (N,) + ``shape``, N in [min_batch, max_batch], entries in [low, high], of ``dtype``.

    Up to ``elementwise_limit`` entries, hypothesis draws (and on failure shrinks) every entry, favouring the
    boundaries, zero and repeated values; larger batches come from a drawn seed (uniform in [low, high]).
    """
    return batches_with_origin(shape, low, high, dtype, min_batch, max_batch, elementwise_limit).map(lambda d: d[0])


def images(channels=1, height=4, width=4, min_batch=1, max_batch=3, dtype=np.float32, levels=256):
    """Dequantized image batches (N, C, H, W) in [0, 1): (k + u) / levels, k an integer level, u ~ U[0, 1)."""
    @st.composite
    def example(draw):
        n = draw(st.integers(min_batch, max_batch), label="batch size")
        seed = draw(st.integers(0, SEED_MAX), label="image seed")
        rng = np.random.default_rng(seed)
        k = rng.integers(0, levels, size=(n, channels, height, width))
        x = (k + rng.uniform(0, 1, size=k.shape)) / levels
        kind = np.dtype(dtype).type
        return np.minimum(x.astype(kind), np.nextafter(kind(1), kind(0)))  # rounding must not reach 1

    return example()


def channels(min_value=2, max_value=4):
    """Channel (or feature) counts; couplings need at least 2."""
    return st.integers(min_value, max_value)


def spatial_sizes(min_value=2, max_value=4):
    """Even spatial sizes (a squeeze halves them)."""
    return st.sampled_from([s for s in range(min_value, max_value + 1) if s % 2 == 0])


def image_shapes(min_channels=1, max_channels=3, min_size=2, max_size=4):
    """Per-sample image shapes (C, H, W) with even H, W."""
    return st.tuples(channels(min_channels, max_channels), spatial_sizes(min_size, max_size),
                     spatial_sizes(min_size, max_size))


def parities():
    """Which half of a coupling conditions (0: the first, 1: the second)."""
    return st.sampled_from([0, 1])


def coupling_forms():
    """The affine coupling's scale: Glow's "sigmoid" or RealNVP's "exp"."""
    return st.sampled_from(["sigmoid", "exp"])


def masks():
    """The coupling's split: "channel" or RealNVP's "checkerboard" (images only)."""
    return st.sampled_from(["channel", "checkerboard"])


def hidden_widths(min_value=2, max_value=8):
    """Hidden widths of a coupling's network (small: the properties do not need capacity)."""
    return st.integers(min_value, max_value)


def coupling_hyperparameters(image=True):
    """A dict of an affine coupling's hyper-parameters: channels, parity, form, mask (images), hidden."""
    return st.fixed_dictionaries({
        "channels": channels(), "parity": parities(), "form": coupling_forms(),
        "mask": masks() if image else st.just("channel"), "hidden": hidden_widths()})
