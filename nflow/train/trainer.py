"""The training loop for any density model: maximum likelihood with Adam, checkpoints, exact resumption.

The model needs ``log_prob(x) -> Tensor (N,)`` (nats per example), ``parameters()``, ``state_dict()`` and
``load_state_dict()``; ``train(mode)`` is used when present (layers such as batch norm behave differently in
evaluation). Each step ``k = 1, 2, …`` (0-based batch index ``s = k - 1``):

1. take batch ``s`` of a :class:`~nflow.data.BatchSampler` (shuffled per epoch by the seed);
2. dequantize it when the data is uint8: x = (pixels + u) / 256, u ~ U[0,1) from the run's own Generator;
3. loss = -(1/N) Σ log p(x_i), in nats; bits/dim = loss / (D ln 2) + log2(n_bins);
4. back-propagate (:func:`nflow.reversible.nll_and_backward`, with stored activations or, with
   ``reversible``, rebuilding them); clip the global gradient norm to ``max_grad_norm``;
5. if the loss or the gradient norm is NaN/inf, skip the update (and count it; stop with
   :class:`TrainingDiverged` after ``max_consecutive_skips`` in a row), else take an Adam step with the
   warmed-up learning rate lr · min(1, k / warmup_steps);
6. log the step (JSON Lines), redraw the progress line, save a checkpoint every ``checkpoint_every`` steps,
   call ``on_sample(k)`` every ``sample_every`` steps.

Exact resumption: a checkpoint holds the parameters, Adam's moments and step count, the step number, and the
states of the dequantization Generator and of nflow's global Generator; the batch order is a function of the
seed and the step. A run resumed from step k therefore computes bit for bit what the uninterrupted run
computed from step k on (on the same machine and backend).

SIGINT/SIGTERM: see :mod:`nflow.train.signals`; the trainer saves a checkpoint and returns a result with
``status="interrupted"``.

Data parallel (:mod:`nflow.distributed`; ``comm``, default the group of one): N ranks each hold a replica.
``config.batch_size`` is one rank's batch B; step s's global batch is batch s of a sampler of batches of N·B
(the same permutation on every rank) and rank r takes its r-th slice of B, with its slice of the noise the
whole global batch would get; ActNorm initialises from the global batch (:mod:`nflow.distributed.context`).
After backward the gradients are averaged in one all-reduce (the rank's loss rides along, so the loss logged
is the global mean), then clipped, and every rank takes the same Adam step. So N ranks × B compute what one
process with batch N·B computes, up to the rounding of the sums. Each step starts with a vote (one small
all-reduce) on whether any rank was signalled or ran out of time, so all ranks stop after the same step; the
replicas are compared every ``replica_check_every`` steps (:func:`nflow.distributed.check_replicas`). Rank 0
alone writes the checkpoint, logs, curve, samples and progress line. A checkpoint records N; it resumes on any
number of ranks whose global batch N·B is the same (:meth:`restore`). An exception raised on one rank alone
ends all ranks through ``comm.abort`` with its message, rather than leaving them waiting in an all-reduce.
"""
import json
import math
import os
import time
from dataclasses import dataclass

import numpy as np

import nflow
from nflow import random as nflow_random
from nflow.atomic import stale_temporaries
from nflow.backend import to_numpy
from nflow.checkpoint import (Checkpoint, CheckpointError, NonFiniteStateError, load_checkpoint, restore_model,
                              save_checkpoint)
from nflow.data.batches import BatchSampler
from nflow.data.dequantize import default_n_bins, to_continuous
from nflow.distributed import SingleProcess, average_gradients, broadcast_state, check_replicas, using
from nflow.errors import NflowError
from nflow.image import plot_training_curve
from nflow.metrics import bits_per_dim
from nflow.optim import Adam, clip_grad_norm, grad_norm
from nflow.reversible import nll_and_backward
from nflow.train.config import TrainConfig
from nflow.train.hooks import run_title
from nflow.train.modes import evaluating
from nflow.train.progress import ProgressBar
from nflow.train.runlog import NullLog, RunLog, read_log
from nflow.train.schedule import warmup_lr
from nflow.train.signals import StepAborted, StopSignals

CHECKPOINT_NAME = "checkpoint.npz"
EVAL_LOG_NAME = "evaluations.jsonl"   # {"step", "test_nll", "test_bpd", ...} every config.eval_every steps
LOG_NAME = "log.jsonl"
CURVE_NAME = "curve.png"
# The SeedSequence spawn key of the dequantization noise (the batch order uses data.batches.SHUFFLE_STREAM).
NOISE_STREAM = 1
RNG_DATA = "data"  # key of the dequantization Generator's state in a checkpoint
RNG_NFLOW = "nflow"  # key of nflow's global Generator's state (layers may draw from it)
# Compare the replicas' checksums every this many steps: a hash of the parameters costs about a step of a small
# model (BLAKE2b at ~1 GB/s), so every 100 steps is under 1% of the time, and a divergence is caught early.
REPLICA_CHECK_EVERY = 100


class TrainingDiverged(NflowError, RuntimeError):
    """Too many consecutive steps had a non-finite loss or gradient norm, or the parameters went non-finite."""


class ResumeError(NflowError, ValueError):
    """A checkpoint does not fit the run it is resumed into (settings, data, or model state differ)."""

    same_on_every_rank = True   # every rank reads the same checkpoint and refuses it alike


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` did. status: "completed", "time limit" or "interrupted" (by ``signal``)."""

    status: str
    step: int
    checkpoint: str
    signal: int = None
    loss: float = math.nan
    bpd: float = math.nan
    skipped_steps: int = 0
    seconds: float = 0.0


class Trainer:
    """Trains ``model`` on ``data`` (an array (N, ...): uint8 images are dequantized, floats used as they are).

    run_dir: where ``checkpoint.npz``, ``log.jsonl`` and ``curve.png`` go (created if needed).
    run_config: a JSON-serialisable dict describing the rest of the run (model name and hyper-parameters,
    dataset), saved in every checkpoint next to the training settings so the CLI can rebuild the model.
    on_sample: optional ``callable(step)``, called every ``config.sample_every`` steps in eval mode without
    a graph; it should draw with an explicit seed so it does not disturb nflow's global Generator.
    on_evaluate: optional ``callable(step) -> dict`` of numbers (such as ``{"test_nll", "test_bpd"}``), called
    every ``config.eval_every`` steps in eval mode; each result is appended to ``evaluations.jsonl`` with its
    step and marked on the curve. Like ``on_sample`` it must leave the training state alone (its own seeds), so
    a resumed run still continues exactly.
    dtype: the floating type the batches are given to the model in.
    labels: None, or the int class of each example (N,) for a class-conditional model: each batch's labels are
    picked with the same indices, the loss is the model's ``training_loss(x, y)`` (the conditional NLL plus its
    weighted classification loss, if any; the step record logs the NLL as "loss" and the cross-entropy as
    "class_ce"). Not with ``config.reversible``.
    comm: the group of ranks training data-parallel (:mod:`nflow.distributed`; default the group of one). Every
    rank passes the same data, config and run_dir (rank 0 writes there; with resume, every rank reads).
    replica_check_every: compare the replicas' checksums every this many steps (0: never).
    """

    def __init__(self, model, data, config, run_dir, run_config=None, on_sample=None, progress_stream=None,
                 dtype=np.float32, on_evaluate=None, labels=None, comm=None,
                 replica_check_every=REPLICA_CHECK_EVERY):
        if not isinstance(config, TrainConfig):
            raise TypeError(f"Trainer: config must be a TrainConfig, got {type(config).__name__}")
        data = np.asarray(data)
        if data.ndim < 2:
            raise ValueError(f"Trainer: data must be (N, ...) with one example per row, got shape {data.shape}")
        if data.dtype.kind not in "uif":
            raise TypeError(f"Trainer: data must be uint8 images or floats, got dtype {data.dtype}")
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape != (len(data),) or labels.dtype.kind not in "iu":
                raise ValueError(f"Trainer: labels must be ints, one per example, shape ({len(data)},); got "
                                 f"{labels.dtype} {labels.shape}")
            if config.reversible:
                raise ValueError("Trainer: reversible backprop does not take labels (its prior term is the "
                                 "unconditional one); train a class-conditional model with stored activations")
            if not hasattr(model, "training_loss"):
                raise TypeError(f"Trainer: labels were given, but {type(model).__name__} has no "
                                "training_loss(x, y) (a class-conditional Glow has)")
        self.model, self.data, self.config, self.labels = model, data, config, labels
        self._step_extra = {}  # what the step's loss adds to its log record ("class_ce")
        self.n_bins = config.n_bins or default_n_bins(data)
        self.sample_shape = tuple(data.shape[1:])
        self.run_dir = os.fspath(run_dir)
        os.makedirs(self.run_dir, exist_ok=True)
        self.checkpoint_path = os.path.join(self.run_dir, CHECKPOINT_NAME)
        self.log_path = os.path.join(self.run_dir, LOG_NAME)
        self.eval_log_path = os.path.join(self.run_dir, EVAL_LOG_NAME)
        self.curve_path = os.path.join(self.run_dir, CURVE_NAME)
        self.run_config = dict(run_config or {})
        try:  # fail now, not at the first checkpoint an hour in
            json.dumps(self.run_config, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise TypeError(f"Trainer: run_config must be JSON-serialisable (it is saved in checkpoints): {e}") from e
        self.on_sample, self.on_evaluate = on_sample, on_evaluate
        self.progress_stream, self.dtype = progress_stream, dtype
        self.params = list(model.parameters())
        self.optimizer = Adam(self.params, lr=config.lr, betas=config.betas, eps=config.eps)
        self.comm = SingleProcess() if comm is None else comm
        self.writer = self.comm.rank == 0   # the one rank that writes files and draws the progress line
        self.replica_check_every = replica_check_every
        self.sampler = BatchSampler(len(data), config.batch_size * self.comm.size, config.seed)  # global batches
        self.rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(NOISE_STREAM,)))
        self.step = 0  # steps completed
        self.consecutive_skips = 0
        self.skipped_total = 0
        self.last_loss = self.last_bpd = math.nan
        self._saved_step = None  # the step of the checkpoint on disk, written or loaded by this trainer
        self._pending = None  # snapshot of the state at the start of the step under way (see _abort)

    # -- state -----------------------------------------------------------------------------------------
    def full_config(self):
        """The JSON stored in checkpoints: ``{"train": TrainConfig as dict, "run": run_config}``."""
        return {"train": self.config.to_dict(), "run": self.run_config}

    def _rng_states(self):
        return {RNG_DATA: self.rng.bit_generator.state, RNG_NFLOW: nflow_random.get_state()}

    def _set_rng_states(self, states):
        self.rng.bit_generator.state = states[RNG_DATA]
        nflow_random.set_state(states[RNG_NFLOW])

    def save(self):
        """Write the checkpoint of the current step (atomically); return its path."""
        extra = {"consecutive_skips": self.consecutive_skips, "skipped_total": self.skipped_total,
                 "n_items": len(self.data), "sample_shape": list(self.sample_shape), "ranks": self.comm.size}
        try:
            if self.writer:
                save_checkpoint(self.checkpoint_path, self.model.state_dict(), self.optimizer.state_dict(), self.step,
                                self._rng_states(), self.full_config(), extra)
        except NonFiniteStateError as e:
            raise TrainingDiverged(f"the parameters became NaN or inf by step {self.step}; the checkpoint "
                                   f"{self.checkpoint_path} was left as it was (step {self._saved_step}). "
                                   "Try a lower learning rate, a longer warm-up or a smaller max_grad_norm.") from e
        self._saved_step = self.step
        return self.checkpoint_path

    def restore(self, checkpoint):
        """Load a checkpoint (a path or a :class:`~nflow.checkpoint.Checkpoint`) written by a trainer of the same
        run; the next :meth:`fit` continues from its step exactly."""
        ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
        train = ckpt.config.get("train") if isinstance(ckpt.config, dict) else None
        if train is None:
            raise CheckpointError(f"checkpoint {ckpt.path}: has no training settings (config['train']); "
                                  "it was not written by nflow.train")
        differences = self.config.trajectory_differences(train)
        ranks = int(ckpt.extra.get("ranks", 1))
        global_batch, saved_global_batch = self.config.batch_size * self.comm.size, train.get("batch_size") * ranks
        if "batch_size" in differences and global_batch == saved_global_batch:
            differences.remove("batch_size")   # another number of ranks, the same global batch: the same run
        elif global_batch != saved_global_batch:
            raise ResumeError(f"cannot resume exactly from {ckpt.path}: its global batch was {saved_global_batch} "
                              f"({ranks} rank(s) × {train.get('batch_size')}), this run's is {global_batch} "
                              f"({self.comm.size} rank(s) × {self.config.batch_size}); give each rank a batch of "
                              f"{saved_global_batch} / {self.comm.size} examples, or use {ranks} rank(s)")
        if differences:
            detail = ", ".join(f"{k}: checkpoint {train.get(k)!r}, now {self.config.to_dict()[k]!r}"
                               for k in differences)
            raise ResumeError(f"cannot resume exactly from {ckpt.path}: settings differ ({detail}). Build the "
                             "TrainConfig from TrainConfig.from_dict(checkpoint.config['train']), changing only "
                             "steps, intervals or progress.")
        n_items, shape = ckpt.extra.get("n_items"), tuple(ckpt.extra.get("sample_shape", ()))
        if n_items != len(self.data) or shape != self.sample_shape:
            raise ResumeError(f"cannot resume from {ckpt.path}: it was trained on {n_items} examples of shape {shape}, "
                             f"this data has {len(self.data)} of shape {self.sample_shape}")
        restore_model(self.model, ckpt)
        try:
            self.optimizer.load_state_dict(ckpt.optimizer_state)
        except (KeyError, ValueError) as e:
            raise ResumeError(f"cannot resume from {ckpt.path}: its optimizer state does not fit this model "
                              f"({e})") from e
        self._set_rng_states(ckpt.rng_state)
        self.step = ckpt.step
        self.consecutive_skips = int(ckpt.extra.get("consecutive_skips", 0))
        self.skipped_total = int(ckpt.extra.get("skipped_total", 0))
        self._saved_step = ckpt.step

    def _snapshot(self):
        """What a step may change before its update: the Generators and the model's buffers (a layer's
        data-dependent initialisation or running statistics). Parameters change only in the update."""
        buffers = {}
        if hasattr(self.model, "named_buffers"):
            buffers = {name: b.copy() if hasattr(b, "copy") else b for name, b in self.model.named_buffers()}
        return self._rng_states(), buffers

    def _abort(self):
        """Undo the step under way (after a second stop signal), so the checkpoint is that of the last step."""
        if self._pending is None:
            return
        rng_states, buffers = self._pending
        self._set_rng_states(rng_states)
        if buffers:
            state = self.model.state_dict()
            state.update({k: to_numpy(v) for k, v in buffers.items()})
            self.model.load_state_dict(state)
        self._pending = None

    # -- one step ----------------------------------------------------------------------------------------
    def batch_indices(self, index):
        """The examples of 0-based step ``index`` this rank trains on: its slice of the global batch."""
        b, rank = self.config.batch_size, self.comm.rank
        return self.sampler.indices(index)[rank * b:(rank + 1) * b]

    def batch(self, index):
        """The model input of 0-based step ``index``: this rank's slice of the global batch, dequantized with its
        slice of the global batch's noise (advancing the noise Generator past all of it) or cast."""
        return to_continuous(self.data[self.batch_indices(index)], self.rng, self.n_bins, self.dtype,
                             part=(self.comm.rank, self.comm.size))

    def _loss_and_grads(self, x, y=None):
        """Forward and backward, by :func:`nflow.reversible.nll_and_backward` with stored activations or
        reversibly; returns (loss, gradient norm before clipping, reason to skip or None).

        The loss is checked after backward: a non-finite loss costs one wasted backward pass, and its
        gradients are discarded with the update (``_train_step`` zeroes them either way).
        """
        if y is None:
            loss_value = nll_and_backward(self.model, nflow.tensor(x), reversible=self.config.reversible)["loss"]
            objective_value, class_ce = loss_value, None
        else:   # the conditional NLL, logged as the loss, plus the classification loss the model weighs in
            objective, parts = self.model.training_loss(nflow.tensor(x), y)
            objective.backward()
            loss_value, objective_value, class_ce = parts["nll"], float(objective.numpy()), parts.get("class_ce")
        # The mean over the ranks of the gradients, and of the losses riding in the same buffer.
        riders = [loss_value, objective_value] + ([] if class_ce is None else [class_ce])
        means = average_gradients(self.comm, self.params, extra=riders) / self.comm.size
        loss_value, objective_value = float(means[0]), float(means[1])
        if class_ce is not None:
            self._step_extra = {"class_ce": float(means[2])}
        if not (math.isfinite(loss_value) and math.isfinite(objective_value)):
            return loss_value, math.nan, "non-finite loss"
        if self.config.max_grad_norm is None:
            norm = grad_norm(self.params)
        else:
            norm = clip_grad_norm(self.params, self.config.max_grad_norm)
        if not math.isfinite(norm):
            return loss_value, norm, "non-finite gradient norm"
        return loss_value, norm, None

    def _train_step(self, stop, log):
        t0 = time.perf_counter()
        k = self.step + 1
        lr = warmup_lr(k, self.config.lr, self.config.warmup_steps)
        x = self.batch(self.step)
        y = None if self.labels is None else self.labels[self.batch_indices(self.step)]
        self.optimizer.zero_grad()
        # NaN/inf are expected here now and then and handled below: keep NumPy from also warning about them.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            loss, norm, reason = self._loss_and_grads(x, y)
            with stop.critical():
                if reason is None:
                    self.optimizer.lr = lr
                    self.optimizer.step()
                self.optimizer.zero_grad()
                self._commit(k, loss, norm, lr, time.perf_counter() - t0, reason, log)

    def _commit(self, k, loss, norm, lr, seconds, reason, log):
        """Book-keeping of a finished step (inside a critical section: a signal cannot split it)."""
        self.step = k
        self._pending = None
        self.last_loss = loss
        self.last_bpd = bits_per_dim(-loss, self.sample_shape, self.n_bins)
        record = {"step": k, "loss": loss, "bpd": self.last_bpd, "grad_norm": norm, "lr": lr,
                  "seconds": seconds, "skipped": reason is not None, **self._step_extra}
        self._step_extra = {}
        if reason is None:
            self.consecutive_skips = 0
        else:
            record["reason"] = reason
            self.consecutive_skips += 1
            self.skipped_total += 1
        log.write(record)
        if self.consecutive_skips >= self.config.max_consecutive_skips:
            self.write_curve()
            where = (f"the last checkpoint, {self.checkpoint_path}, holds step {self._saved_step}"
                     if self._saved_step is not None else "no checkpoint was written")
            diverged = TrainingDiverged(
                f"stopped at step {k}: {self.consecutive_skips} consecutive steps had a non-finite loss or gradient "
                f"norm (max_consecutive_skips={self.config.max_consecutive_skips}; last: {reason}). Skipped steps "
                f"leave the parameters unchanged and {where}. Try a lower learning rate, a longer warm-up or a "
                f"smaller max_grad_norm.")
            diverged.same_on_every_rank = True   # the loss and gradient norm are the global ones: all ranks agree
            raise diverged
        if self.config.checkpoint_every and k % self.config.checkpoint_every == 0:
            self.save()

    # -- the loop ----------------------------------------------------------------------------------------
    def fit(self, resume=None):
        """Train up to ``config.steps`` steps (continuing from ``resume``, a checkpoint path or object, if given).

        Returns a :class:`TrainResult`. Raises :class:`TrainingDiverged` when training cannot go on.
        Installs SIGINT/SIGTERM handlers for its duration and restores the previous ones afterwards.
        """
        with using(self.comm):
            try:
                return self._fit(resume)
            except Exception as e:
                if self.comm.size > 1 and not getattr(e, "same_on_every_rank", False):
                    # Raised on this rank alone: the others would wait for it in their next all-reduce forever.
                    self.comm.abort(f"nflow: rank {self.comm.rank} of {self.comm.size} failed at step {self.step + 1}:"
                                    f" {type(e).__name__}: {e}; all ranks stopped")
                raise

    def _fit(self, resume):
        if resume is not None:
            self.restore(resume)
        broadcast_state(self.comm, self.model)   # the replicas start equal whatever seeds built them
        if self.writer:
            for leftover in stale_temporaries(self.checkpoint_path):   # a killed earlier run's half-written file
                os.unlink(leftover)
        t_start = time.perf_counter()
        # A run that continues (resumed, or fit again with more steps) keeps its log up to its step; a fresh
        # run starts a fresh one.
        log = RunLog(self.log_path, keep_until=self.step if self.step > 0 else None) if self.writer else NullLog()
        eval_log = (RunLog(self.eval_log_path, keep_until=self.step if self.step > 0 else None) if self.writer
                    else NullLog())
        progress = ProgressBar(self.config.steps, self.step, self.progress_stream,
                               self.config.progress and self.writer)
        if hasattr(self.model, "train"):
            self.model.train(True)
        status, signum = "completed", None
        try:
            with StopSignals(abortable=self.comm.size == 1) as stop:
                try:
                    while self.step < self.config.steps:
                        vote = self._vote_to_stop(stop, t_start)
                        if vote is not None:
                            status, signum = vote
                            break
                        self._pending = None
                        self._pending = self._snapshot()
                        self._train_step(stop, log)
                        progress.update(self.step, self.last_loss, self.last_bpd, self.skipped_total,
                                        force=self.step == self.config.steps)
                        if self.replica_check_every and self.step % self.replica_check_every == 0:
                            check_replicas(self.comm, self.model, self.step)
                        self._maybe_sample()
                        self._maybe_evaluate(eval_log)
                except StepAborted:
                    self._abort()
                with stop.critical():
                    if stop.requested and status != "interrupted":   # a signal that came after the last vote
                        status, signum = "interrupted", stop.signum
                    if status == "interrupted":
                        progress.update(self.step, self.last_loss, self.last_bpd, self.skipped_total, force=True)
                    if self._saved_step != self.step:
                        self.save()
                    self.write_curve()
        finally:
            log.close()
            eval_log.close()
            progress.close()
        return TrainResult(status=status, step=self.step, checkpoint=self.checkpoint_path, signal=signum,
                           loss=self.last_loss, bpd=self.last_bpd, skipped_steps=self.skipped_total,
                           seconds=time.perf_counter() - t_start)

    def _vote_to_stop(self, stop, t_start):
        """Whether to stop before the next step, agreed by all ranks in one small all-reduce: None to go on,
        ("interrupted", signal) when some rank was sent SIGINT/SIGTERM (the signal of the lowest such rank), or
        ("time limit", None) when some rank has used up ``config.time_limit``. A rank deciding alone could
        stop one step before the others, which would then wait for it forever."""
        out_of_time = bool(self.config.time_limit) and time.perf_counter() - t_start > self.config.time_limit
        ballot = np.zeros(1 + self.comm.size, dtype=np.float64)   # [out of time, the signal of each rank]
        ballot[0] = out_of_time
        ballot[1 + self.comm.rank] = stop.signum or 0
        ballot = to_numpy(self.comm.allreduce_sum(ballot))
        signals = [int(v) for v in ballot[1:] if v]
        if signals:
            return "interrupted", signals[0]
        if ballot[0]:
            return "time limit", None
        return None

    def _maybe_sample(self):
        every = self.config.sample_every
        if self.on_sample is None or not every or self.step % every or not self.writer:
            return
        with evaluating(self.model):
            self.on_sample(self.step)

    def _maybe_evaluate(self, eval_log):
        every = self.config.eval_every
        if self.on_evaluate is None or not every or self.step % every or not self.writer:
            return
        with evaluating(self.model):
            result = self.on_evaluate(self.step)
        eval_log.write({"step": self.step, **result})

    def write_curve(self):
        """Plot the logged curve to ``curve.png``: bits/dim when the data has quantisation levels (images; the
        code length of a pixel), the loss in nats otherwise (n_bins = 1: continuous data, where bits/dim is
        only the loss rescaled); titled with the model and the run's data; test evaluations in the log marked."""
        if not self.writer:
            return
        unit = "bits/dim" if self.n_bins > 1 else "nats"
        records = read_log(self.log_path)
        if records:  # a run that never finished a step has nothing to plot
            plot_training_curve(self.curve_path, records + read_log(self.eval_log_path),
                                title=run_title(self.model, self.run_config.get("data")),
                                unit=unit)
