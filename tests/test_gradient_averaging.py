"""``nflow.distributed.average_gradients`` without MPI: the group of one leaves every gradient as it is, and the
one-buffer packing of a larger group gives each parameter the mean of the ranks' gradients (here two identical
ranks, simulated in one process). The real 2-rank proofs are in tests/test_distributed.py."""
import numpy as np

from nflow.distributed import Communicator, SingleProcess, average_gradients
from nflow.nn.module import Parameter


class TwoIdenticalRanks(Communicator):
    """Two ranks that hold the same buffer: the all-reduce sum is twice it."""

    size, rank = 2, 0

    def allreduce_sum(self, buffer):
        return 2 * buffer


def parameters_with_gradients(seed=0):
    rng = np.random.default_rng(seed)
    params = [Parameter(np.zeros(shape)) for shape in ((3, 4), (5,), (2, 2, 2))]
    for p in params:
        p.grad = rng.standard_normal(p.data.shape)
    params.append(Parameter(np.zeros(3)))   # a parameter that received no gradient
    return params


def test_one_process_keeps_its_gradients_untouched_and_gets_its_numbers_back():
    params = parameters_with_gradients()
    before = [p.grad for p in params]
    riders = average_gradients(SingleProcess(), params, extra=[1.5, -2.0])
    assert all(p.grad is g for p, g in zip(params, before))   # not even copied
    np.testing.assert_array_equal(riders, [1.5, -2.0])


def test_the_mean_over_ranks_is_unpacked_into_each_parameter_and_the_riders_come_back_summed():
    params = parameters_with_gradients()
    want = [None if p.grad is None else p.grad.copy() for p in params]
    riders = average_gradients(TwoIdenticalRanks(), params, extra=[1.5, -2.0])
    for p, w in zip(params, want):
        if w is None:
            assert p.grad is None
        else:
            np.testing.assert_array_equal(p.grad, w)   # (g + g) / 2 = g exactly
            assert p.grad.shape == w.shape
    np.testing.assert_array_equal(riders, [3.0, -4.0])
