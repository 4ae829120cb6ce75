"""Held-out likelihood: the average negative log-likelihood and bits/dim of a model over a whole dataset."""
import math

import numpy as np

import nflow
from nflow.data.dequantize import default_n_bins, to_continuous
from nflow.metrics import bits_per_dim, n_dims
from nflow.train.modes import evaluating

DEFAULT_EVAL_BATCH = 500
# The SeedSequence spawn key of evaluation's dequantization noise (training uses 0 and 1).
EVAL_NOISE_STREAM = 2


def eval_batches(data, batch_size=DEFAULT_EVAL_BATCH, seed=0, n_bins=None, dtype=np.float32):
    """The batches evaluation feeds a model, in order: ``data`` in slices of ``batch_size``, uint8 images
    dequantized with noise from ``seed`` (its own stream, so training's Generators are untouched). Every
    held-out measurement (:func:`evaluate`, :func:`nflow.inspect.decompose`) reads the same inputs from it."""
    n_bins = n_bins or default_n_bins(data)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(EVAL_NOISE_STREAM,)))
    for start in range(0, len(data), batch_size):
        yield to_continuous(data[start:start + batch_size], rng, n_bins, dtype)


def _labels_of_batches(labels, n, batch_size):
    """The labels of each of :func:`eval_batches`' batches, in order (None for every batch when ``labels`` is None)."""
    if labels is None:
        return [None] * math.ceil(n / batch_size)
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(f"evaluate: expected one label per example, shape ({n},), got {labels.shape}")
    return [labels[start:start + batch_size] for start in range(0, n, batch_size)]


def evaluate(model, data, batch_size=DEFAULT_EVAL_BATCH, seed=0, n_bins=None, dtype=np.float32, labels=None):
    """Mean NLL (nats per example) and bits/dim of ``model`` on every example of ``data``, in order.

    uint8 data is dequantized with noise from ``seed`` (a fixed seed makes the number reproducible; the
    estimate's noise is small for a test set of thousands of images). Runs in eval mode without a graph and
    restores the model's training mode afterwards. Returns ``{"nll", "nll_se", "bpd", "bpd_se", "n",
    "n_nonfinite"}``: the means and their standard errors (sample std of the per-example values / sqrt(n));
    all NaN when any example's log-density is not finite (counted in ``n_nonfinite``). ``labels`` (N,): for a
    class-conditional model, the NLL is that of log p(x | y) with these labels.
    """
    data = np.asarray(data)
    n_bins = n_bins or default_n_bins(data)
    total, total_sq, nonfinite = 0.0, 0.0, 0
    batch_labels = _labels_of_batches(labels, len(data), batch_size)
    with evaluating(model), np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        for x, y in zip(eval_batches(data, batch_size, seed, n_bins, dtype), batch_labels):
            log_prob = model.log_prob(nflow.tensor(x), *([] if y is None else [y])).numpy().astype(np.float64)
            nonfinite += int((~np.isfinite(log_prob)).sum())
            total += float(log_prob.sum())
            total_sq += float((log_prob ** 2).sum())
    n = len(data)
    nll = -total / n if not nonfinite else math.nan
    variance = max(total_sq / n - (total / n) ** 2, 0.0) * n / max(n - 1, 1)
    nll_se = math.sqrt(variance / n) if not nonfinite else math.nan
    bpd = bits_per_dim(-nll, data.shape[1:], n_bins)
    bpd_se = nll_se / (n_dims(data.shape[1:]) * math.log(2))
    return {"nll": nll, "nll_se": nll_se, "bpd": bpd, "bpd_se": bpd_se, "n": n, "n_nonfinite": nonfinite}


def classification_accuracy(model, data, labels, batch_size=DEFAULT_EVAL_BATCH, seed=0, n_bins=None,
                            dtype=np.float32):
    """The fraction of ``data`` whose most probable class under ``model.predict`` (the class posterior, uniform
    class prior) is its label, on the inputs :func:`evaluate` reads (the same dequantization noise)."""
    data = np.asarray(data)
    n_bins = n_bins or default_n_bins(data)
    correct = 0
    with evaluating(model):
        for x, y in zip(eval_batches(data, batch_size, seed, n_bins, dtype),
                        _labels_of_batches(labels, len(data), batch_size)):
            correct += int((model.predict(x).argmax(axis=1) == y).sum())
    return correct / len(data)
