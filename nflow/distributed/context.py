"""The communicator in use, for the layers whose forward pass needs the whole global batch.

One layer needs the group inside a forward pass: ActNorm's data-dependent initialisation, whose statistics
must be those of the global batch (N ranks × B examples), not of one rank's B — the bug that broke
DataParallel Glow in PyTorch (rosinality/glow-pytorch #2). Handing a communicator down through every model's
constructor for that one moment would thread it through every layer; instead the trainer makes it *current*
for the duration of :meth:`Trainer.fit` (``with using(comm): ...``) and the layer asks :func:`current`.
Outside any ``using`` block the current communicator is the group of one, so a model used alone behaves as it
always did.
"""
import contextlib

from nflow.distributed.communicator import SingleProcess

_SINGLE = SingleProcess()
_stack = [_SINGLE]


def current():
    """The communicator of the innermost active :func:`using` block (the group of one outside any)."""
    return _stack[-1]


@contextlib.contextmanager
def using(comm):
    """Make ``comm`` the current communicator inside the block."""
    _stack.append(comm)
    try:
        yield comm
    finally:
        _stack.pop()
