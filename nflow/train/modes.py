"""Evaluation mode for a block of code: how sampling, held-out evaluation and pictures run a model."""
import contextlib

from nflow.tensor import no_grad


@contextlib.contextmanager
def evaluating(model):
    """Run the block with ``model`` in evaluation mode (layers such as batch norm use their running statistics
    instead of the batch's) and without a graph, then put its training mode back.

    ``model.train(mode)`` is used when present; a model without a ``training`` flag is taken to be training.
    """
    switch = hasattr(model, "train")
    was_training = getattr(model, "training", True)
    if switch:
        model.train(False)
    try:
        with no_grad():
            yield
    finally:
        if switch:
            model.train(was_training)
