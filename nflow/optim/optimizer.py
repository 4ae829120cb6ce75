"""Optimizer base: a list of parameters, per-parameter state, ``zero_grad``, state dicts for checkpoints."""
import numpy as np

from nflow.backend import get_array_module, to_numpy


class Optimizer:
    def __init__(self, params, lr):
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if lr <= 0:
            raise ValueError(f"{type(self).__name__}: learning rate must be positive, got {lr}")
        self.lr = lr
        self.state = [dict() for _ in self.params]  # per-parameter arrays (moments, momentum)
        self.step_count = 0

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        self.step_count += 1
        for p, state in zip(self.params, self.state):
            if p.grad is not None:
                self.update(p, p.grad, state)

    def update(self, p, grad, state):
        raise NotImplementedError

    def state_dict(self):
        """Step count, learning rate and every state array as host NumPy arrays under flat names."""
        out = {"step_count": np.array(self.step_count), "lr": np.array(self.lr)}
        for i, state in enumerate(self.state):
            for key, value in state.items():
                out[f"{i}.{key}"] = to_numpy(value).copy()
        return out

    def load_state_dict(self, d):
        self.step_count = int(d["step_count"])
        self.lr = float(d["lr"])
        self.state = [dict() for _ in self.params]
        for name, value in d.items():
            if name in ("step_count", "lr"):
                continue
            i, key = name.split(".", 1)
            p = self.params[int(i)]
            if value.shape != p.shape:
                raise ValueError(f"{type(self).__name__}.load_state_dict: state {name} has shape {value.shape}, "
                                 f"parameter {i} has shape {p.shape}")
            self.state[int(i)][key] = get_array_module(p.data).asarray(value, dtype=p.dtype).copy()
