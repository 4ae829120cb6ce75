"""Weight transfer between an nflow model and its PyTorch twin (:mod:`benchmarks.torch_models`).

The twin uses nflow's dotted names, so the transfer is a name-by-name copy of every parameter and buffer
(ActNorm's ``initialised`` flag, the LU permutation and ``sign_s``), checked both ways:
a key on one side and not the other, or a shape that differs, is an error naming the key.
"""
import numpy as np
import torch

from benchmarks import torch_models
from nflow.backend import to_numpy

TORCH_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


def torch_dtype(np_dtype):
    return TORCH_DTYPES[np.dtype(np_dtype)]


def _torch_state(model):
    """Every parameter and persistent buffer of the torch model by name (the live tensors)."""
    return dict(model.state_dict(keep_vars=True))


def nflow_to_torch(nflow_model, torch_model):
    """Copy every parameter and buffer of ``nflow_model`` into ``torch_model`` (in place); returns it."""
    src = nflow_model.state_dict()
    dst = _torch_state(torch_model)
    missing = sorted(set(dst) - set(src))
    unexpected = sorted(set(src) - set(dst))
    if missing or unexpected:
        raise KeyError(f"weight transfer: torch has keys nflow lacks {missing}; nflow has keys torch lacks {unexpected}")
    with torch.no_grad():
        for name, value in src.items():
            target = dst[name]
            if tuple(value.shape) != tuple(target.shape):
                raise ValueError(f"weight transfer: {name} is {tuple(value.shape)} in nflow, "
                                 f"{tuple(target.shape)} in torch")
            target.copy_(torch.as_tensor(np.array(value)).to(target.dtype))  # np.array keeps 0-d shape
    torch_model._latent_shapes = None
    for module in torch_model.modules():
        if isinstance(module, torch_models.ActNorm):
            module.known_initialised = False  # re-read the transferred ``initialised`` buffer
    return torch_model


def torch_to_nflow(torch_model, nflow_model):
    """The reverse copy (``load_state_dict`` on the nflow side checks names, shapes and dtypes)."""
    own = nflow_model.state_dict()
    state = {}
    for name, t in _torch_state(torch_model).items():
        state[name] = t.detach().cpu().numpy().astype(own[name].dtype if name in own else t.detach().numpy().dtype)
    nflow_model.load_state_dict(state)
    return nflow_model


def torch_twin(nflow_model):
    """A PyTorch model of the same architecture and dtype as ``nflow_model``, holding its weights."""
    model = torch_models.build(nflow_model.config, dtype=torch_dtype(nflow_model.dtype))
    model.train(nflow_model.training)
    return nflow_to_torch(nflow_model, model)


def nflow_gradients(nflow_model):
    """{name: gradient array} of the nflow model's parameters (None where no gradient arrived)."""
    return {name: (None if p.grad is None else to_numpy(p.grad)) for name, p in nflow_model.named_parameters()}


def torch_gradients(torch_model):
    return {name: (None if p.grad is None else p.grad.detach().numpy()) for name, p in torch_model.named_parameters()}
