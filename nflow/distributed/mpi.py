"""The communicator over MPI, through mpi4py (``pip install "nflow[mpi]"``; run with ``mpiexec -n N``).

Collectives use mpi4py's buffer methods (upper-case ``Allreduce``, ``Bcast``) on contiguous NumPy arrays: the
bytes go straight to MPI, nothing is pickled. CuPy arrays are copied to the host and back (no CUDA-aware MPI is
assumed; on GPUs use :class:`~nflow.distributed.nccl.NCCLCommunicator`).

Bit-identical replicas need every rank to receive the *same* sum, not only the same sum up to rounding. MPI does
not promise it, but MPICH's all-reduce algorithms (recursive doubling: the same pairs, in either order, added
on every rank; reduce-scatter + all-gather and ring: each chunk reduced once, then copied) give every rank the
same bits; :func:`nflow.distributed.check_replicas` checks that it stays so.
"""
import sys

import numpy as np

from nflow.backend import get_array_module, to_numpy
from nflow.distributed.communicator import Communicator


class MPICommunicator(Communicator):
    """An MPI communicator (default ``MPI.COMM_WORLD``: every process ``mpiexec`` started)."""

    def __init__(self, comm=None):
        from mpi4py import MPI   # optional dependency: imported only when a distributed run asks for it
        self._MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.size = self.comm.Get_size()
        self.rank = self.comm.Get_rank()

    @staticmethod
    def _host(buffer):
        host = np.ascontiguousarray(to_numpy(buffer))
        if host.dtype not in (np.float32, np.float64, np.int64):
            raise TypeError(f"MPICommunicator: buffers must be float32, float64 or int64, got {host.dtype}")
        return host

    @staticmethod
    def _like(host, buffer):
        return host if isinstance(buffer, np.ndarray) else get_array_module(buffer).asarray(host)

    def allreduce_sum(self, buffer):
        host = self._host(buffer)
        if host is buffer:
            host = host.copy()   # never overwrite the caller's array in place: it may be a view of a gradient
        self.comm.Allreduce(self._MPI.IN_PLACE, host, op=self._MPI.SUM)
        return self._like(host, buffer)

    def broadcast(self, buffer, root=0):
        host = self._host(buffer)
        if host is buffer:
            host = host.copy()
        self.comm.Bcast(host, root=root)
        return self._like(host, buffer)

    def barrier(self):
        self.comm.Barrier()

    def abort(self, message, code=1):
        print(message, file=sys.stderr, flush=True)
        self.comm.Abort(code)


def mpi_world():
    """The communicator of every process ``mpiexec`` started (one, when run without ``mpiexec``).

    Raises ImportError with the install command when mpi4py is missing."""
    try:
        import mpi4py  # noqa: F401
    except ImportError as e:
        raise ImportError('nflow.distributed: MPI needs mpi4py and an MPI library: pip install "nflow[mpi]" '
                          '(or pip install mpi4py mpich)') from e
    return MPICommunicator()
