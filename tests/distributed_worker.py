"""What each rank runs in tests/test_distributed.py (``mpiexec -n 2 python tests/distributed_worker.py SCENARIO
OUT``); not a test module. Writes its results under OUT, one file per rank, for the test to compare with one
process computing the same thing."""
import os
import signal
import sys

import numpy as np

import nflow
from nflow.data.dequantize import dequantize
from nflow.distributed import average_gradients, mpi_world, using
from nflow.flows.actnorm import ActNorm
from nflow.models import Glow
from nflow.reversible import nll_and_backward
from nflow.train import TrainConfig, Trainer

PER_RANK_BATCH = 4
STEPS = 20
CLASSES = 3   # of the class-conditional run: labels ride with their examples into each rank's slice
CLASS_WEIGHT = 1.0


def make_model(seed, num_classes=None):
    nflow.seed(seed)
    return Glow((1, 8, 8), levels=2, steps=2, hidden=8, dtype=np.float64, num_classes=num_classes,
                class_weight=CLASS_WEIGHT if num_classes else 0.0)


def make_labels():
    return np.random.default_rng(1).integers(0, CLASSES, size=len(make_data()))


def trained_runs():
    """name -> (reversible, classes) of the 20-step runs compared with one process."""
    return {"stored": (False, None), "reversible": (True, None), "conditional": (False, CLASSES)}


def make_data():
    return np.random.default_rng(0).integers(0, 256, size=(64, 1, 8, 8), dtype=np.uint8)


def global_batch(n):
    """The first n examples, dequantized with a fixed noise seed (the same on every rank and in the test)."""
    return dequantize(make_data()[:n], np.random.default_rng(5), dtype=np.float64)


def config(steps=STEPS, reversible=False, checkpoint_every=10):
    return TrainConfig(steps=steps, batch_size=PER_RANK_BATCH, lr=1e-3, warmup_steps=5, seed=3, progress=False,
                       eval_every=0, sample_every=0, checkpoint_every=checkpoint_every, reversible=reversible)


def actnorm_state(model):
    """Every ActNorm's (bias, log_scale), in the model's order: its data-dependent initialisation."""
    layers = [layer for layer in model.flow_layers() if isinstance(layer, ActNorm)]
    assert layers, "the test model must have ActNorm layers"
    return {f"actnorm{i}_{name}": np.array(getattr(layer, name).data)
            for i, layer in enumerate(layers) for name in ("bias", "log_scale")}


def gradients_and_training(comm, out):
    """(1) and (3): the averaged gradient and ActNorm's initialisation of one step on this rank's slice;
    (2) and (4): 20 training steps (stored activations, reversible, and a class-conditional Glow with its labels), starting from models built with
    a different seed on each rank (the trainer's broadcast makes them equal)."""
    model = make_model(seed=11)
    x = global_batch(comm.size * PER_RANK_BATCH)[comm.rank * PER_RANK_BATCH:(comm.rank + 1) * PER_RANK_BATCH]
    model.train(True)
    with using(comm):
        loss = nll_and_backward(model, nflow.tensor(x), reversible=False)["loss"]
    mean_loss = average_gradients(comm, model.parameters(), extra=[loss])[0] / comm.size
    np.savez(os.path.join(out, f"grad_rank{comm.rank}.npz"), loss=mean_loss,
             **{f"grad{i}": p.grad for i, p in enumerate(model.parameters())},
             **actnorm_state(model))
    for name, (reversible, classes) in trained_runs().items():
        model = make_model(seed=100 + comm.rank, num_classes=classes)
        trainer = Trainer(model, make_data(), config(reversible=reversible), os.path.join(out, f"run_{name}"),
                          dtype=np.float64, comm=comm, replica_check_every=5,
                          labels=make_labels() if classes else None)
        result = trainer.fit()
        np.savez(os.path.join(out, f"final_{name}_rank{comm.rank}.npz"), step=result.step, loss=result.loss,
                 **{f"p{i}": p.data for i, p in enumerate(model.parameters())})


class PerturbedTrainer(Trainer):
    """Rank 1 nudges one parameter by one ulp after step 3: the replicas then differ."""

    def _train_step(self, stop, log):
        super()._train_step(stop, log)
        if self.step == 3 and self.comm.rank == 1:
            p = self.params[0].data
            p.flat[0] = np.nextafter(p.flat[0], np.inf)


class KilledTrainer(Trainer):
    """Rank 1 dies (SIGKILL, no clean-up) at step 3."""

    def _train_step(self, stop, log):
        if self.step == 3 and self.comm.rank == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        super()._train_step(stop, log)


class FailingTrainer(Trainer):
    """Rank 1 raises an ordinary exception in step 4 (rank 0 goes on to that step's all-reduce)."""

    def _train_step(self, stop, log):
        if self.step == 3 and self.comm.rank == 1:
            raise RuntimeError("an error on rank 1 alone")
        super()._train_step(stop, log)


def failing(comm, out):
    FailingTrainer(make_model(1), make_data(), config(steps=100_000), os.path.join(out, "run"),
                   dtype=np.float64, comm=comm).fit()


def mismatch(comm, out):
    trainer = PerturbedTrainer(make_model(1), make_data(), config(steps=10), os.path.join(out, "run"),
                               dtype=np.float64, comm=comm, replica_check_every=2)
    try:
        trainer.fit()
    except nflow.distributed.ReplicaMismatch as e:
        with open(os.path.join(out, f"rank{comm.rank}.txt"), "w", encoding="utf-8") as f:
            f.write(f"rank {comm.rank} stopped: {e}")


def killed(comm, out):
    KilledTrainer(make_model(1), make_data(), config(steps=100_000), os.path.join(out, "run"),
                  dtype=np.float64, comm=comm).fit()


def sigterm(comm, out):
    """Trains until stopped; the test sends SIGTERM to mpiexec once the log shows a few steps."""
    result = Trainer(make_model(1), make_data(), config(steps=100_000, checkpoint_every=0), os.path.join(out, "run"),
                     dtype=np.float64, comm=comm).fit()
    with open(os.path.join(out, f"rank{comm.rank}.txt"), "w", encoding="utf-8") as f:
        f.write(f"rank {comm.rank}: {result.status} at step {result.step} by signal {result.signal}")


SCENARIOS = {"train": gradients_and_training, "mismatch": mismatch, "killed": killed, "failing": failing,
             "sigterm": sigterm}

if __name__ == "__main__":
    SCENARIOS[sys.argv[1]](mpi_world(), sys.argv[2])
