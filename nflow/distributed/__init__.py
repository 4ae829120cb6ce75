"""Data-parallel training: every rank (process) holds a replica of the model and trains on its slice of the
global batch; gradients are averaged with one all-reduce per step, so the replicas stay bit-identical.

Run ``mpiexec -n N nflow train ... --distributed``, or from Python::

    from nflow.distributed import mpi_world
    trainer = Trainer(model, data, config, run_dir, comm=mpi_world())   # under mpiexec -n N python script.py

``TrainConfig.batch_size`` is the batch of one rank, B; a step sees the global batch of N·B examples (see
:class:`nflow.train.Trainer`). Communicators: :class:`SingleProcess` (the default; every code path runs through
it), :class:`~nflow.distributed.mpi.MPICommunicator` (mpi4py, ``pip install "nflow[mpi]"``) and
:class:`~nflow.distributed.nccl.NCCLCommunicator` (CuPy's NCCL; untested, no GPU where it was written).
"""
from nflow.distributed.communicator import Communicator, SingleProcess
from nflow.distributed.context import current, using
from nflow.distributed.gradients import average_gradients, broadcast_state
from nflow.distributed.mpi import MPICommunicator, mpi_world
from nflow.distributed.replicas import ReplicaMismatch, check_replicas, checksum

__all__ = ["Communicator", "SingleProcess", "MPICommunicator", "mpi_world", "current", "using",
           "average_gradients", "broadcast_state", "ReplicaMismatch", "check_replicas", "checksum",
           "NCCLCommunicator"]


def __getattr__(name):
    if name == "NCCLCommunicator":   # imports CuPy only when asked for
        from nflow.distributed.nccl import NCCLCommunicator
        return NCCLCommunicator
    raise AttributeError(f"module 'nflow.distributed' has no attribute {name!r}")
