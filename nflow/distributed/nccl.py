"""The communicator over NCCL, through CuPy (``cupy.cuda.nccl``): all-reduce between GPUs without the host.

UNTESTED: written against CuPy's documented ``NcclCommunicator`` API but never run (the machine it was written
on has no GPU). One rank per GPU; the NCCL unique id is made on rank 0 and handed to the others through MPI
(``bootstrap``, an :class:`~nflow.distributed.mpi.MPICommunicator`), the usual way to start NCCL. With one GPU,
``NCCLCommunicator()`` with no bootstrap is a group of one that still runs the NCCL calls.
"""
import sys

import numpy as np

from nflow.distributed.communicator import Communicator

NCCL_UNIQUE_ID_BYTES = 128


class NCCLCommunicator(Communicator):
    """All-reduce and broadcast of CuPy arrays with NCCL on the current CUDA stream."""

    def __init__(self, bootstrap=None):
        import cupy
        from cupy.cuda import nccl
        self._cupy, self._nccl = cupy, nccl
        self.bootstrap = bootstrap
        self.size = 1 if bootstrap is None else bootstrap.size
        self.rank = 0 if bootstrap is None else bootstrap.rank
        uid = nccl.get_unique_id() if self.rank == 0 else (0,) * NCCL_UNIQUE_ID_BYTES
        if bootstrap is not None:
            uid = tuple(int(v) for v in bootstrap.broadcast(np.asarray(uid, dtype=np.int64), root=0))
        self.comm = nccl.NcclCommunicator(self.size, uid, self.rank)
        self._types = {np.dtype(np.float32): nccl.NCCL_FLOAT32, np.dtype(np.float64): nccl.NCCL_FLOAT64}

    def _device(self, buffer):
        buffer = self._cupy.ascontiguousarray(self._cupy.asarray(buffer))
        if buffer.dtype not in self._types:
            raise TypeError(f"NCCLCommunicator: buffers must be float32 or float64, got {buffer.dtype}")
        return buffer

    def allreduce_sum(self, buffer):
        send = self._device(buffer)
        out = self._cupy.empty_like(send)
        stream = self._cupy.cuda.get_current_stream().ptr
        self.comm.allReduce(send.data.ptr, out.data.ptr, send.size, self._types[send.dtype], self._nccl.NCCL_SUM,
                            stream)
        return out

    def broadcast(self, buffer, root=0):
        buf = self._device(buffer).copy()
        stream = self._cupy.cuda.get_current_stream().ptr
        self.comm.bcast(buf.data.ptr, buf.size, self._types[buf.dtype], root, stream)
        return buf

    def barrier(self):
        self._cupy.cuda.get_current_stream().synchronize()
        if self.bootstrap is not None:
            self.bootstrap.barrier()

    def abort(self, message, code=1):
        self.comm.abort()
        if self.bootstrap is not None:
            self.bootstrap.abort(message, code)
        print(message, file=sys.stderr, flush=True)
        raise SystemExit(code)
