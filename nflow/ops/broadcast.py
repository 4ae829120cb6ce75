"""Broadcasting helpers shared by the ops: NumPy broadcasts forward, so backward must sum back."""


def sum_to(grad, shape):
    """Sum ``grad`` down to ``shape``: the adjoint of NumPy broadcasting ``shape`` up to ``grad.shape``.

    Leading axes that broadcasting added are summed away; axes where ``shape`` has size 1 are summed
    with ``keepdims``.
    """
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1)
    out = grad.sum(axis=axes, keepdims=True)
    return out.reshape(shape)


def broadcast_shape(where, *shapes):
    """The broadcast shape of ``shapes``, or a ValueError naming the op and both shapes."""
    import numpy as np
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError(f"{where}: shapes {' and '.join(str(s) for s in shapes)} do not broadcast") from None
