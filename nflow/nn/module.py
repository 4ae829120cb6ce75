"""``Module`` and ``Parameter``: named trainable tensors, buffers, submodules, state dicts, train/eval mode.

Registration is explicit and ordered: assigning a :class:`Parameter`, a :class:`Module` or a
:class:`ModuleList` to an attribute records it under that name (``self.weight = Parameter(...)``);
non-trainable state that belongs in a checkpoint is added with :meth:`Module.register_buffer`.
Names in a state dict are dotted paths: ``"flows.3.coupling.net.0.weight"``.
"""
from collections import OrderedDict

import numpy as np

from nflow.backend import array_module_for_backend, get_array_module, to_device, to_numpy
from nflow.tensor import Tensor


class Parameter(Tensor):
    """A Tensor that a Module owns and an optimizer updates: a leaf that requires grad."""

    __slots__ = ()

    def __init__(self, data, name=None):
        super().__init__(data, requires_grad=True, name=name)

    def __repr__(self):
        return "Parameter" + super().__repr__()[len("Tensor"):]


class Module:
    """Base class of layers and models. Subclasses set attributes in ``__init__`` and define ``forward``."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}: call Module.__init__() before assigning attributes")
        if name in self._buffers and not isinstance(value, (Parameter, Module)):
            object.__setattr__(self, name, value)  # a new value for a buffer: it stays registered
            return
        for table in (self._parameters, self._modules, self._buffers):
            table.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name, array):
        """Non-trainable state saved in the state dict (running means, 'initialised' flags)."""
        self._buffers[name] = None
        object.__setattr__(self, name, array)

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args):
        raise NotImplementedError(f"{type(self).__name__} does not define forward")

    # -- traversal ------------------------------------------------------------------------------------
    def named_modules(self, prefix=""):
        yield prefix, self
        for name, m in self._modules.items():
            yield from m.named_modules(f"{prefix}{name}.")

    def modules(self):
        return (m for _, m in self.named_modules())

    def named_parameters(self):
        for prefix, m in self.named_modules():
            for name, p in m._parameters.items():
                yield prefix + name, p

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def named_buffers(self):
        for prefix, m in self.named_modules():
            for name in m._buffers:
                yield prefix + name, getattr(m, name)

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    def train(self, mode=True):
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    # -- state ----------------------------------------------------------------------------------------
    def state_dict(self):
        """Every parameter and buffer by dotted name, as host NumPy arrays (copies)."""
        out = OrderedDict()
        for name, p in self.named_parameters():
            out[name] = to_numpy(p.data).copy()
        for name, b in self.named_buffers():
            out[name] = to_numpy(b).copy()
        return out

    def load_state_dict(self, state):
        """Load arrays by name; names, shapes and dtypes must match exactly (the error lists what differs)."""
        own = dict(self.named_parameters())
        buffers = {name for name, _ in self.named_buffers()}
        missing = [k for k in list(own) + sorted(buffers) if k not in state]
        unexpected = [k for k in state if k not in own and k not in buffers]
        if missing or unexpected:
            raise KeyError(f"{type(self).__name__}.load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        # Check every entry before changing anything, so a failed load leaves the module as it was.
        updates = []
        for name, value in state.items():
            value = np.asarray(value) if not hasattr(value, "shape") else value
            # A NaN or inf weight makes every output NaN: refuse it here, naming the entry, not at the first use.
            if value.dtype.kind == "f" and not bool(get_array_module(value).isfinite(value).all()):
                raise ValueError(f"{type(self).__name__}.load_state_dict: {name} holds NaN or inf")
            if name in own:
                p = own[name]
                if value.shape != p.shape or value.dtype != p.dtype:
                    raise ValueError(f"{type(self).__name__}.load_state_dict: {name} is {p.dtype}{p.shape} here, "
                                     f"the state dict has {value.dtype}{value.shape}")
                updates.append((p, None, value))
            else:
                module, attr = self._owner(name)
                current = getattr(module, attr)
                if value.shape != current.shape:
                    raise ValueError(f"{type(self).__name__}.load_state_dict: buffer {name} has shape "
                                     f"{current.shape} here, the state dict has {value.shape}")
                updates.append((module, attr, value))
        for owner, attr, value in updates:
            if attr is None:  # a parameter
                owner.data = get_array_module(owner.data).asarray(value).copy()
            else:             # a buffer keeps its own dtype and device
                current = getattr(owner, attr)
                object.__setattr__(owner, attr, get_array_module(current).asarray(value, dtype=current.dtype).copy())
        for m in self.modules():
            m._after_load_state()
        return self

    def _after_load_state(self):
        """Hook for layers with caches derived from their state (an inverse weight, a validity check)."""

    def _owner(self, dotted):
        *path, attr = dotted.split(".")
        module = self
        for part in path:
            module = module._modules[part]
        return module, attr

    def to(self, backend_name):
        """Move every parameter and buffer to where ``backend_name`` keeps arrays (host or GPU)."""
        for m in self.modules():
            for name, p in m._parameters.items():
                p.data = to_device(p.data, backend_name)
            for name in m._buffers:
                object.__setattr__(m, name, to_device(getattr(m, name), backend_name))
        return self

    def n_parameters(self):
        return sum(p.size for p in self.parameters())


class ModuleList(Module):
    """An ordered list of submodules, registered as ``"0"``, ``"1"``, ..."""

    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module):
        setattr(self, str(len(self._modules)), module)

    def __getitem__(self, i):
        return list(self._modules.values())[i]

    def __iter__(self):
        return iter(self._modules.values())

    def __len__(self):
        return len(self._modules)


def new_array(array):
    """Put a freshly initialised host array where the current backend keeps arrays."""
    xp = array_module_for_backend()
    return xp.asarray(array)
