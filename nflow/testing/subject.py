"""The layer under test, made ready: a copy of it, run once in training mode, every parameter perturbed, then
in eval mode; its float64 twin for the central-difference properties; its copies per backend.

Why perturb. Coupling networks end in a zero-initialised layer, ActNorm starts at b = 0, log s = 0, BatchNormFlow at
γ = 1, β = 0: at initialisation many layers are the identity or a fixed scaling, and an identity passes a round
trip whatever its inverse does. One forward pass in training mode first (so data-dependent starts such as
ActNorm's happen on a batch from [low, high]); then every parameter gets PERTURB_STD · N(0, 1) added. 0.1 moves a
zero-initialised network's output (and so y) by about a tenth of the input's scale, 10⁸ times the float64 round-trip
tolerance, while exp-form scales stay within e^±0.5 of where they were, so conditioning, and with it the
tolerances, stay as they are for a trained layer. Then eval mode: BatchNormFlow in training mode mixes the
samples of a batch by design, and an inverse that uses running statistics is only an inverse in eval mode.

The user's layer is never changed: the kit works on a deep copy (or, for a layer that cannot be copied, on the
layer itself, restoring its parameters and mode afterwards).
"""
import copy

import numpy as np

import nflow
from nflow.backend import get_array_module, to_numpy
from nflow.flows.base import Flow, FlowSequence
from nflow.models.base import FlowModel
from nflow.nn.module import Module
from nflow.tensor import Tensor, no_grad
from nflow.testing.evaluate import call
from nflow.testing.jacobian import snap
from nflow.testing.model_flow import ModelFlow

PERTURB_STD = 0.1
WARMUP_BATCH = 4


def describe(layer):
    """A short name for messages: the class, and its repr when the class defines one."""
    if type(layer).__repr__ is not object.__repr__:
        text = repr(layer)
        if len(text) <= 120:
            return text
    return f"{type(layer).__qualname__} (from {type(layer).__module__})"


def named_parameters(layer):
    """[(name, Parameter)] of a Module; [(\"parameter i\", p)] of an object with ``parameters()``; else []."""
    if isinstance(layer, Module):
        return list(layer.named_parameters())
    params = layer.parameters() if callable(getattr(layer, "parameters", None)) else []
    return [(f"parameter {i}", p) for i, p in enumerate(params)]


def depth(layer):
    """Leaf flow layers inside ``layer`` (its rounding grows with this), at least 1."""
    if not isinstance(layer, Module):
        return 1
    return max(1, sum(1 for m in layer.modules() if isinstance(m, Flow)
                      and not isinstance(m, (FlowSequence, ModelFlow))))


def set_training(layer, mode):
    if callable(getattr(layer, "train", None)):
        layer.train(mode)


def host_copy(layer):
    """A deep copy with every array on the host; None when the layer cannot be deep-copied."""
    try:
        twin = copy.deepcopy(layer)
    except Exception:  # locks, open files, C handles: work on the layer itself instead
        return None
    if isinstance(twin, Module):
        twin.to("numpy")
    return twin


def _cast64(value):
    """``value`` with float32 arrays, Tensors, dtypes made float64 (Tensors in place); containers recursively."""
    if isinstance(value, Tensor):
        if value.dtype == np.float32:
            value.data = value.data.astype(np.float64)
        return value
    if isinstance(value, np.ndarray):
        return value.astype(np.float64) if value.dtype == np.float32 else value
    if isinstance(value, np.dtype):
        return np.dtype(np.float64) if value == np.float32 else value
    if value is np.float32:
        return np.float64
    if isinstance(value, (tuple, list)):
        cast = [_cast64(v) for v in value]
        return value if all(a is b for a, b in zip(cast, value)) else type(value)(cast)
    return value


def float64_twin(layer):
    """A float64 copy of a float32 layer with the same (upcast) parameters, or None if one cannot be made.

    Generic: every float32 array, Tensor, Parameter, buffer and ``dtype`` attribute of every submodule becomes
    float64; then each module's ``_after_load_state`` hook runs (where nflow layers drop caches derived from their
    state, such as InvConv1x1's inverse weight). A layer that makes float32 arrays inside forward by other means
    makes a twin that fails, and the kit then reports that the central-difference properties need a float64 layer.
    """
    twin = host_copy(layer)
    if twin is None:
        return None
    objects = list(twin.modules()) if isinstance(twin, Module) else [twin]
    for obj in objects:
        for name, value in list(vars(obj).items()):
            if name in ("_parameters", "_modules", "_buffers"):
                continue
            cast = _cast64(value)
            if cast is not value:
                object.__setattr__(obj, name, cast)
    for obj in objects:
        hook = getattr(obj, "_after_load_state", None)
        if callable(hook):
            hook()
    return twin


class Subject:
    """The prepared layer (``layer``, in the dtype under test, on the host), its float64 twin (``twin``; the same
    object for a float64 layer; None when it cannot be made), and bookkeeping for messages."""

    def __init__(self, layer, input_shape, low, high, dtype, perturb_std, rng):
        with nflow.backend("numpy"):  # the copy lives on the host, whatever backend is current
            self._prepare(layer, input_shape, low, high, dtype, perturb_std, rng)

    def _prepare(self, layer, input_shape, low, high, dtype, perturb_std, rng):
        if isinstance(layer, FlowModel):
            model = host_copy(layer)
            layer = ModelFlow(model if model is not None else layer)
            prepared = layer if model is not None else None  # the model inside is already a copy
        else:
            prepared = host_copy(layer)
        self.name = describe(layer)
        self.input_shape, self.dtype = tuple(input_shape), np.dtype(dtype)
        self.dim = int(np.prod(self.input_shape))
        self._restore = None
        if prepared is None:
            prepared = layer
            self._restore = ([to_numpy(p.data).copy() for _, p in named_parameters(layer)],
                             getattr(layer, "training", None))
        self.layer = prepared
        self.params = named_parameters(prepared)
        self.depth = depth(prepared)
        self._warm_up(low, high, rng)
        for _, p in self.params:
            p.data = p.data + _like(p.data, (rng.standard_normal(p.shape) * perturb_std).astype(p.dtype))
        set_training(prepared, False)
        self.twin_problem = None
        self.twin = prepared if self.dtype == np.float64 else self._float64_twin(low, high, rng)
        self.twin_params = self.params if self.twin is prepared else (
            named_parameters(self.twin) if self.twin is not None else [])
        for _, p in self.twin_params:  # steps p + k·h·v exact (jacobian.snap): a change of at most 2⁻³⁷
            p.data = _like(p.data, snap(to_numpy(p.data)))
        self._copies = {}

    def _float64_twin(self, low, high, rng):
        """The float64 twin, tried once on a batch; None (and ``twin_problem`` says why) if it cannot run."""
        twin = float64_twin(self.layer)
        if twin is None:
            self.twin_problem = "the layer cannot be deep-copied"
            return None
        x = rng.uniform(low, high, size=(2,) + self.input_shape)
        try:
            y, logdet = call(twin, "forward", x, "numpy")
            x_back, _ = call(twin, "inverse", y.data, "numpy")
            dtypes = {y.dtype, logdet.dtype, x_back.dtype}
        except Exception as error:  # noqa: BLE001  (any failure of the copy means: no twin)
            self.twin_problem = f"its float64 copy fails: {type(error).__name__}: {error}"
            return None
        if dtypes != {np.dtype(np.float64)}:
            self.twin_problem = f"its float64 copy returns {sorted(map(str, dtypes))}, not float64"
            return None
        return twin

    def _warm_up(self, low, high, rng):
        set_training(self.layer, True)
        x = rng.uniform(low, high, size=(WARMUP_BATCH,) + self.input_shape).astype(self.dtype)
        with no_grad():
            self.layer.forward(Tensor(x))

    def on(self, backend):
        """The layer to run on ``backend``: the prepared one on the host backends, a GPU copy for CuPy."""
        if backend != "cupy":
            return self.layer
        if not isinstance(self.layer, Module):
            return self.layer  # no parameters of its own to move; its arrays follow the input's device
        if backend not in self._copies:
            twin = copy.deepcopy(self.layer)
            twin.to("cupy")
            self._copies[backend] = twin
        return self._copies[backend]

    def params_on(self, backend):
        return [p for _, p in named_parameters(self.on(backend))]

    def restore(self):
        """Put back a layer that was checked in place (one that could not be copied)."""
        if self._restore is None:
            return
        values, training = self._restore
        for (_, p), value in zip(self.params, values):
            p.data = _like(p.data, value)
        if training is not None:
            set_training(self.layer, training)


def _like(reference, host_value):
    """``host_value`` on the device of ``reference``."""
    return get_array_module(reference).asarray(host_value)
