"""Mini-batches by step number: shuffled, reproducible, and resumable from any step without replaying.

Training is counted in steps. Step ``s`` (0-based) falls in epoch ``e = s // steps_per_epoch`` at position
``i = s % steps_per_epoch``; its examples are ``perm_e[i·B : (i+1)·B]`` where ``perm_e`` is the permutation
drawn from a Generator seeded with ``SeedSequence(seed, spawn_key=(SHUFFLE_STREAM, e))``. Each epoch's order
is a pure function of the seed and the epoch number, never of what ran before, so a run resumed at step ``s``
sees exactly the batches an uninterrupted run would. With ``drop_last=True`` (the default for training) the
last ``N mod B`` examples of each shuffled epoch are left out, so every batch has the same size.
"""
import math

import numpy as np

# Independent random streams derived from one user seed are told apart by their SeedSequence spawn key;
# the shuffling of epochs uses this one (the trainer's dequantization noise uses another).
SHUFFLE_STREAM = 0


class BatchSampler:
    """Indices of the batch at each step. ``sampler.indices(step)`` or iterate with ``sampler.iterate(start)``."""

    def __init__(self, n_items, batch_size, seed, shuffle=True, drop_last=True):
        if batch_size <= 0:
            raise ValueError(f"BatchSampler: batch_size must be positive, got {batch_size}")
        too_few = n_items < batch_size if drop_last else n_items == 0
        if too_few:
            raise ValueError(f"BatchSampler: {n_items} items cannot fill one batch of {batch_size}"
                             + (" (drop_last=True)" if drop_last else ""))
        self.n_items, self.batch_size, self.seed = int(n_items), int(batch_size), int(seed)
        self.shuffle, self.drop_last = shuffle, drop_last
        self.steps_per_epoch = (n_items // batch_size) if drop_last else math.ceil(n_items / batch_size)
        self._cached_epoch, self._cached_order = None, None

    def epoch_order(self, epoch):
        """The order of all items in ``epoch``: a permutation seeded by (seed, epoch), or 0..N-1 unshuffled."""
        if not self.shuffle:
            return np.arange(self.n_items)
        if epoch != self._cached_epoch:
            self._cached_epoch = epoch
            seed_seq = np.random.SeedSequence(self.seed, spawn_key=(SHUFFLE_STREAM, int(epoch)))
            self._cached_order = np.random.default_rng(seed_seq).permutation(self.n_items)
        return self._cached_order

    def position(self, step):
        """(epoch, index of the batch within the epoch) of the 0-based ``step``."""
        if step < 0:
            raise ValueError(f"BatchSampler: step must be non-negative, got {step}")
        return divmod(int(step), self.steps_per_epoch)

    def indices(self, step):
        """The item indices of the batch at 0-based ``step``."""
        epoch, i = self.position(step)
        return self.epoch_order(epoch)[i * self.batch_size:(i + 1) * self.batch_size]

    def iterate(self, start_step=0, stop_step=None):
        """Yield ``(step, indices)`` for step = start_step, start_step + 1, … (forever when stop_step is None)."""
        step = start_step
        while stop_step is None or step < stop_step:
            yield step, self.indices(step)
            step += 1


def iterate_batches(data, batch_size, seed, start_step=0, stop_step=None, shuffle=True, drop_last=True):
    """Yield ``(step, data[indices])`` for each step of a :class:`BatchSampler` over ``len(data)`` items."""
    sampler = BatchSampler(len(data), batch_size, seed, shuffle=shuffle, drop_last=drop_last)
    for step, idx in sampler.iterate(start_step, stop_step):
        yield step, data[idx]
