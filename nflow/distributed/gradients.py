"""Gradient averaging and the broadcast of the model's state: one flat buffer, one collective call, whatever the
model's size.

Data parallelism (as in Horovod, which openai/glow used): rank r computes the gradient g_r of the mean loss
over its own B examples; the mean loss over the global batch of N·B examples has gradient

    g = (1/N) Σ_r g_r,

which every rank receives from one all-reduce and then applies in the same optimizer step, so the replicas stay
equal. All gradients travel in ONE contiguous buffer (a call per tensor would pay the network latency once per
tensor: hundreds of times per step for Glow).
"""
import numpy as np

from nflow.backend import get_array_module, to_numpy


def pack(arrays, extra=()):
    """One contiguous 1-D buffer: every array of ``arrays`` flattened in order, then the numbers ``extra``."""
    xp = get_array_module(arrays[0]) if arrays else np
    dtype = arrays[0].dtype if arrays else np.float64
    parts = [a.reshape(-1) for a in arrays] + ([xp.asarray(extra, dtype=dtype)] if len(extra) else [])
    return xp.concatenate(parts) if parts else xp.zeros(0, dtype=dtype)


def unpack(buffer, like):
    """The arrays of the shapes of ``like`` cut from the front of ``buffer``, and the rest of it."""
    out, offset = [], 0
    for a in like:
        out.append(buffer[offset:offset + a.size].reshape(a.shape))
        offset += a.size
    return out, buffer[offset:]


def average_gradients(comm, params, extra=()):
    """Replace each parameter's ``.grad`` with its mean over the ranks, in one all-reduce; ``extra`` numbers
    (such as the loss) ride along in the same buffer and come back summed (not averaged) as a float array.

    Parameters without a gradient are left out (every rank runs the same model, so the same ones are missing).
    """
    if comm.size == 1:
        # The mean over a group of one is the gradient itself: packing it would only copy every gradient twice
        # (tens of milliseconds a step for NICE's 19 M parameters), so one process trains as fast as before.
        return np.asarray(extra, dtype=np.float64)
    with_grad = [p for p in params if p.grad is not None]
    dtypes = {p.grad.dtype for p in with_grad}
    if len(dtypes) > 1:
        raise TypeError(f"average_gradients: the gradients have several dtypes {sorted(map(str, dtypes))}; "
                        "one buffer needs one dtype")
    grads = [p.grad for p in with_grad]
    total = comm.allreduce_sum(pack(grads, extra))
    summed, rest = unpack(total, grads)
    for p, g in zip(with_grad, summed):
        p.grad = g / p.grad.dtype.type(comm.size)
    return np.asarray([float(v) for v in rest], dtype=np.float64)


def broadcast_state(comm, model, root=0):
    """Copy rank ``root``'s whole ``model.state_dict()`` — parameters and buffers, such as the fixed permutation
    of Glow's LU 1x1 convolution — to every rank, in one broadcast, so the replicas start equal even if each rank
    built its model from another seed. The entries travel as float64 (exact for float32 values and for the
    integers buffers hold) and are loaded back in their own dtypes."""
    state = model.state_dict()
    arrays = [np.asarray(v) for v in state.values()]
    total = comm.broadcast(pack([a.astype(np.float64) for a in arrays]), root=root)
    values, _ = unpack(np.asarray(to_numpy(total)), arrays)
    model.load_state_dict({name: v.astype(a.dtype) for name, v, a in zip(state, values, arrays)})
