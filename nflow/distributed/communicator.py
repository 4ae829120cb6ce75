"""What data-parallel training needs from a group of processes, and the group of one.

Every process (a *rank*) holds a replica of the model. The trainer talks to the group only through these
methods, on flat NumPy (or CuPy) arrays, so the same code path runs with one process or many:

- ``size``, ``rank``: how many ranks there are, and which one this is (0-based; rank 0 writes the files);
- ``allreduce_sum(buffer)``: the element-wise sum of every rank's ``buffer`` (same shape and dtype on all),
  returned on every rank (the buffer itself may be overwritten and returned);
- ``broadcast(buffer, root=0)``: rank ``root``'s buffer, returned on every rank;
- ``barrier()``: wait until every rank has arrived;
- ``abort(message, code)``: print ``message`` and end every rank (a rank that fails alone must not leave the
  others waiting forever in their next all-reduce).
"""
import sys


class Communicator:
    """The interface (see the module docstring). Subclasses set ``size`` and ``rank``."""

    size = 1
    rank = 0

    def allreduce_sum(self, buffer):
        raise NotImplementedError

    def broadcast(self, buffer, root=0):
        raise NotImplementedError

    def barrier(self):
        raise NotImplementedError

    def abort(self, message, code=1):
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}(size={self.size}, rank={self.rank})"


class SingleProcess(Communicator):
    """The group of one process: every collective returns its input. The default of the trainer, so training
    on one process runs through exactly the calls that training on many does."""

    size = 1
    rank = 0

    def allreduce_sum(self, buffer):
        return buffer

    def broadcast(self, buffer, root=0):
        if root != 0:
            raise ValueError(f"SingleProcess.broadcast: root must be 0 in a group of one, got {root}")
        return buffer

    def barrier(self):
        pass

    def abort(self, message, code=1):
        print(message, file=sys.stderr, flush=True)
        raise SystemExit(code)
