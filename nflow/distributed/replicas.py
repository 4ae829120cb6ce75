"""Checking that the replicas are still bit-identical: a cheap checksum, compared across ranks.

Each rank computes (float64 sum of every entry of the model's state — parameters and buffers —, a 48-bit
BLAKE2b hash of their bytes) — 48 bits, so the
hash is an integer a float64 holds exactly. An all-gather made of one all-reduce (rank r writes its two
numbers in slots 2r, 2r+1 of a zero buffer of 2N; adding zeros is exact) gives every rank every checksum, so
all ranks reach the same verdict and stop together. The hash catches any difference of a single bit; the sum
only makes the message readable.
"""
import hashlib

import numpy as np

from nflow.backend import to_numpy
from nflow.errors import NflowError

HASH_BYTES = 6   # 48 bits: exact in a float64's 53-bit significand


class ReplicaMismatch(NflowError, RuntimeError):
    """The replicas of the model differ between ranks. Raised on every rank at the same step."""

    same_on_every_rank = True   # every rank raises it: none needs to abort the others


def checksum(arrays):
    """(float64 sum of all values, 48-bit hash of their bytes as a float) of the arrays of this rank's replica."""
    digest = hashlib.blake2b(digest_size=HASH_BYTES)
    total = 0.0
    for a in arrays:
        host = np.ascontiguousarray(to_numpy(a))
        digest.update(host.tobytes())
        total += float(host.astype(np.float64).sum())
    return total, float(int.from_bytes(digest.digest(), "little"))


def check_replicas(comm, model, step):
    """Raise :class:`ReplicaMismatch` on every rank when some rank's ``model.state_dict()`` differs from rank 0's."""
    mine = checksum(model.state_dict().values())
    table = np.zeros(2 * comm.size, dtype=np.float64)
    table[2 * comm.rank:2 * comm.rank + 2] = mine
    table = to_numpy(comm.allreduce_sum(table)).reshape(comm.size, 2)
    differ = [r for r in range(comm.size) if table[r, 1] != table[0, 1]]
    if differ:
        detail = "; ".join(f"rank {r}: sum {float(table[r, 0])!r}" for r in [0] + differ)
        raise ReplicaMismatch(f"the model replicas differ at step {step}: rank(s) {differ} do not match rank 0 "
                              f"({detail}). Every rank must take the same update from the same averaged gradient; "
                              "a rank that computed differently (another backend, library or bug) was found.")
