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
from nflow.flows.base import FlowSequence
from nflow.flows.priors import PRIORS
from nflow.tensor import Tensor, no_grad

DEFAULT_CHECKPOINT_EVERY = 8  # exact copies kept every M layers once drift is seen
DRIFT_TOL = {np.dtype(np.float32): 1e-3, np.dtype(np.float64): 1e-9}  # relative, at the model's input


def flat_layers(flow):
    """The leaf layers of a (possibly nested) FlowSequence, in forward order."""
    if isinstance(flow, FlowSequence):
        return [leaf for layer in flow.layers for leaf in flat_layers(layer)]
    return [flow]


def _stages(model):
    """[(layers of the stage, whether half the channels leave after it)], preprocessing first."""
    last = len(model.levels) - 1
    return [(flat_layers(model.preprocess), False)] + [
        (flat_layers(level), i < last) for i, level in enumerate(model.levels)]


def _relative_drift(rebuilt, true):
    xp = get_array_module(true)
    scale = max(float(xp.abs(true).max()), 1.0)
    return float(xp.abs(rebuilt - true).max()) / scale


def forward_no_graph(model, x, checkpoint_every=None):
    """Sweep 1: latents, per-sample log-det total and exact copies of every M-th layer input (if asked)."""
    copies = {}
    with no_grad():
        h = model._as_input(x)
        total = None
        latents = []
        index = 0
        for layers, factor_out in _stages(model):
            for layer in layers:
                if checkpoint_every and index % checkpoint_every == 0:
                    copies[index] = h.data.copy()
                h, logdet = layer.forward(h)
                total = logdet.data if total is None else total + logdet.data
                index += 1
            if factor_out:
                h, z = F.split(h, 2, axis=1)
                latents.append(z.data)
        latents.append(h.data)
    return latents, total, copies


def nll_and_backward(model, x, reversible=True, checkpoint_every=None, drift_tol=None):
    """Mean NLL (nats per sample) of the batch ``x``; parameter gradients accumulate into ``.grad``.

    ``reversible=False`` is the ordinary stored-activation path (for comparison). Returns a dict:
    ``loss`` (float), ``drift`` (relative error of the rebuilt input), ``checkpoint_every`` (as used).
    """
    if not reversible:
        loss = -F.mean(model.log_prob(x))
        loss.backward()
        return {"loss": float(loss.data), "drift": 0.0, "checkpoint_every": None}
    for layer in model.modules():
        if type(layer).__name__ == "BatchNormFlow" and model.training:
            raise ValueError("reversible backprop: BatchNormFlow in training mode normalises with batch statistics "
                             "that its inverse cannot see; train it with the stored path or in eval mode")
    if checkpoint_every is None:
        checkpoint_every = getattr(model, "_reversible_checkpoint_every", None)
    x_true = model._as_input(x).data
    tol = drift_tol if drift_tol is not None else DRIFT_TOL.get(np.dtype(x_true.dtype), 1e-3)
    params = model.parameters()
    saved_grads = [None if p.grad is None else p.grad.copy() for p in params]

    result = _reversible_pass(model, x_true, checkpoint_every)
    if result["drift"] > tol and not checkpoint_every:
        # Fallback: the rebuild drifted; discard this step's gradients and redo it with exact copies.
        for p, g in zip(params, saved_grads):
            p.grad = g
        checkpoint_every = DEFAULT_CHECKPOINT_EVERY
        model._reversible_checkpoint_every = checkpoint_every
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

    glogdet = xp.full((n,), -1.0 / n, dtype=x_true.dtype)
    stages = _stages(model)
    index = sum(len(layers) for layers, _ in stages)
    y, gy = latents[-1], leaves[-1].grad
    k = len(latents) - 1
    max_copy_drift = 0.0
    for layers, factor_out in reversed(stages):
        if factor_out:
            k -= 1
            y = xp.concatenate([y, latents[k]], axis=1)
            gy = xp.concatenate([gy, leaves[k].grad], axis=1)
        for layer in reversed(layers):
            index -= 1
            y, gy = layer.backward_from_output(y, gy, glogdet)
            if index in copies:  # replace the rebuilt input by the exact copy kept in sweep 1
                max_copy_drift = max(max_copy_drift, _relative_drift(y, copies[index]))
                y = copies[index]
    drift = _relative_drift(y, x_true) if not copies else max_copy_drift
    return {"loss": loss, "drift": drift, "checkpoint_every": checkpoint_every, "fallback": False}


def reconstruction_drift(model, x):
    """Relative drift of every layer's rebuilt input against the true one (list, in forward order).

    Runs the forward sweep keeping every input, then the inverse sweep from the latents alone.
    """
    with no_grad():
        h = model._as_input(x)
        true_inputs, latents = [], []
        for layers, factor_out in _stages(model):
            for layer in layers:
                true_inputs.append(h.data.copy())
                h, _ = layer.forward(h)
            if factor_out:
                h, z = F.split(h, 2, axis=1)
                latents.append(z)
        latents.append(h)
        drifts = [0.0] * len(true_inputs)
        index = len(true_inputs)
        y = latents[-1]
        k = len(latents) - 1
        for layers, factor_out in reversed(_stages(model)):
            if factor_out:
                k -= 1
                y = F.concat([y, latents[k]], axis=1)
            for layer in reversed(layers):
                index -= 1
                y, _ = layer.inverse(y)
                drifts[index] = _relative_drift(y.data, true_inputs[index])
    return drifts
