"""A test split for data that comes without one: a seeded, fixed fraction of the examples held out.

The examples are permuted by a Generator seeded with ``SeedSequence(seed, spawn_key=(HOLDOUT_STREAM,))``; the
first ``n_test = max(1, round(test_fraction · N))`` indices of that permutation are the test split, the rest the
training split, each returned in increasing order (the file's own order). The two never overlap, together they
are all N examples, and they are the same on every call, machine and NumPy version with the same generator.
"""
import numpy as np

from nflow.data.errors import DataError

# Independent random streams from one user seed are told apart by their spawn key: the batch order uses 0
# (data.batches.SHUFFLE_STREAM), the trainer's dequantization noise 1, evaluation's noise 2.
HOLDOUT_STREAM = 3
MIN_TEST_EXAMPLES = 1


def check_test_fraction(test_fraction):
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")


def holdout_indices(n, split, test_fraction, seed, name):
    """The sorted indices of ``split`` ("train" or "test") among ``n`` examples (see the module docstring)."""
    check_test_fraction(test_fraction)
    n_test = max(MIN_TEST_EXAMPLES, round(test_fraction * n))
    if n - n_test < 1:
        raise DataError(f"{name}: {n} images are too few to hold out a test fraction of {test_fraction} "
                        "and keep at least one for training")
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(HOLDOUT_STREAM,)))
    order = rng.permutation(n)
    return np.sort(order[:n_test] if split == "test" else order[n_test:])
