"""Memory-free backprop: rebuild each layer's input from its output with the layer's own inverse.

An invertible network need not store activations (Gomez et al. 2017, "The Reversible Residual Network";
the i-RevNet and Glow papers note it too). Training a flow by maximum likelihood here runs in two sweeps:

1. **Forward, without a graph.** Every layer runs under ``no_grad``; only the latents (the outputs) and
   the per-sample log-det total are kept — O(size of the input) memory whatever the depth.
2. **Backward, layer by layer in reverse.** Each layer gets its output y and ∂L/∂y, rebuilds x = f⁻¹(y),
   re-runs f on x with a graph of that one layer, and back-propagates (:meth:`Flow.backward_from_output`);
   the graph is freed before the next layer. Peak memory is one layer's graph.

The loss is the mean negative log-likelihood, L = -(1/N) Σ_n [Σ_layers logdet_n + Σ_latents log p(z_n)],
so every layer's log-det receives the same cotangent ∂L/∂logdet_n = -1/N.

Rebuilt inputs drift from the true ones by float rounding compounded over depth. The drift at the model's
input is measured on every call (the true input is at hand); when it passes ``drift_tol`` the step is
redone with exact copies kept every ``checkpoint_every`` layers, and the model keeps that setting.
"""
import numpy as np

import nflow.functional as F
from nflow.backend import get_array_module
from nflow.flows.priors import PRIORS
from nflow.tensor import Tensor, no_grad

DEFAULT_CHECKPOINT_EVERY = 8  # exact copies kept every M layers once drift is seen
DRIFT_TOL = {np.dtype(np.float32): 1e-3, np.dtype(np.float64): 1e-9}  # relative, at the model's input


def _relative_drift(rebuilt, true):
    xp = get_array_module(true)
    scale = max(float(xp.abs(true).max()), 1.0)
    return float(xp.abs(rebuilt - true).max()) / scale


def _factor_in_arrays(layer, kept, latent):
    """:meth:`Split.factor_in` on arrays, outside any graph."""
    with no_grad():
        return layer.factor_in(Tensor(kept), Tensor(latent)).data


def forward_no_graph(model, x, checkpoint_every=None):
    """Sweep 1: latents, per-sample log-det total and exact copies of every M-th layer input (if asked)."""
    copies = {}

    def keep_copy(index, h):
        if checkpoint_every and index % checkpoint_every == 0:
            copies[index] = h.data.copy()

    with no_grad():
        latents, logdet = model.forward_latents(model.as_input(x), before_layer=keep_copy)
    return [z.data for z in latents], logdet.data, copies


def stored_nll_and_backward(model, x):
    """The ordinary path, every activation stored: mean NLL (nats per sample), then one backward.

    ``model.log_prob`` must give one value per example, a Tensor of shape (N,): the mean of anything else (a sum,
    a per-pixel map) would train on a wrong loss without a word, so it is refused here."""
    log_prob = model.log_prob(x)
    n = x.shape[0]
    if not isinstance(log_prob, Tensor) or log_prob.shape != (n,):
        got = log_prob.shape if isinstance(log_prob, Tensor) else type(log_prob).__name__
        raise TypeError(f"{type(model).__name__}.log_prob must return a Tensor of shape ({n},), got {got}")
    loss = -F.mean(log_prob)
    loss.backward()
    return float(loss.data)


def nll_and_backward(model, x, reversible=True, checkpoint_every=None, drift_tol=None):
    """Mean NLL (nats per sample) of the batch ``x``; parameter gradients accumulate into ``.grad``.

    ``reversible=False`` is the ordinary stored-activation path (for comparison). Returns a dict:
    ``loss`` (float), ``drift`` (relative error of the rebuilt input), ``checkpoint_every`` (as used).
    """
    if not reversible:
        return {"loss": stored_nll_and_backward(model, x), "drift": 0.0, "checkpoint_every": None}
    if getattr(model, "num_classes", None) is not None:
        # the sweep below scores the top latent under the standard prior, not p(ε | y): refuse, never train wrongly
        raise ValueError("reversible backprop: this model is class-conditional (its top prior needs the labels); "
                         "train it with stored activations (Trainer with labels, reversible=False)")
    if model.training:
        for layer in model.flow_layers():
            if not layer.invertible_in_training:
                raise ValueError(f"reversible backprop: {type(layer).__name__} in training mode cannot rebuild its "
                                 "input from its output (it normalises with the batch's own statistics, which its "
                                 "inverse cannot see); train it with the stored path or in eval mode")
    if checkpoint_every is None:
        checkpoint_every = model.reversible_checkpoint_every
    x_true = model.as_input(x).data
    tol = drift_tol if drift_tol is not None else DRIFT_TOL.get(np.dtype(x_true.dtype), 1e-3)
    params = model.parameters()
    saved_grads = [None if p.grad is None else p.grad.copy() for p in params]

    result = _reversible_pass(model, x_true, checkpoint_every)
    if result["drift"] > tol and not checkpoint_every:
        # Fallback: the rebuild drifted; discard this step's gradients and redo it with exact copies.
        for p, g in zip(params, saved_grads):
            p.grad = g
        checkpoint_every = DEFAULT_CHECKPOINT_EVERY
        model.reversible_checkpoint_every = checkpoint_every
        result = _reversible_pass(model, x_true, checkpoint_every)
        result["fallback"] = True
    return result


def _reversible_pass(model, x_true, checkpoint_every):
    latents, total, copies = forward_no_graph(model, x_true, checkpoint_every)
    n = x_true.shape[0]
    xp = get_array_module(x_true)

    # The prior term and its gradient with respect to each latent.
    prior = PRIORS[model.prior]
    leaves = [Tensor(z, requires_grad=True) for z in latents]
    log_prior = None
    for z in leaves:
        term = prior(z)
        log_prior = term if log_prior is None else log_prior + term
    objective = -F.sum(log_prior) * (1.0 / n)
    objective.backward()
    loss = float(objective.data) - float(total.sum()) / n

    # Sweep 2: the walk back, carrying (y, ∂L/∂y) from the latents to the input.
    glogdet = xp.full((n,), -1.0 / n, dtype=x_true.dtype)
    max_copy_drift = [0.0]

    def step(index, layer, state):
        y, gy = state
        x, gx = layer.backward_from_output(y, gy, glogdet)
        if index in copies:  # replace the rebuilt input by the exact copy kept in sweep 1
            max_copy_drift[0] = max(max_copy_drift[0], _relative_drift(x, copies[index]))
            x = copies[index]
        return x, gx

    def factor_in(layer, state, latent):
        (y, gy), (z, gz) = state, latent
        return _factor_in_arrays(layer, y, z), _factor_in_arrays(layer, gy, gz)

    pairs = [(z.data, z.grad) for z in leaves]
    x_rebuilt, _ = model.walk_back(pairs[-1], pairs[:-1], step, factor_in)
    drift = _relative_drift(x_rebuilt, x_true) if not copies else max_copy_drift[0]
    return {"loss": loss, "drift": drift, "checkpoint_every": checkpoint_every, "fallback": False}


def reconstruction_drift(model, x):
    """Relative drift of every layer's rebuilt input against the true one (list, in forward order).

    Runs the forward sweep keeping every input, then the inverse sweep from the latents alone.
    """
    true_inputs = []
    with no_grad():
        latents, _ = model.forward_latents(model.as_input(x), before_layer=lambda i, h: true_inputs.append(h.data.copy()))
        drifts = [0.0] * len(true_inputs)

        def step(index, layer, y):
            x_rebuilt, _ = layer.inverse(y)
            drifts[index] = _relative_drift(x_rebuilt.data, true_inputs[index])
            return x_rebuilt

        model.walk_back(latents[-1], latents[:-1], step, factor_in=lambda layer, kept, z: layer.factor_in(kept, z))
    return drifts
