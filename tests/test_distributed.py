"""Data-parallel training on MPI (issue 15), proved on this machine over loopback: ``mpiexec -n 2`` runs
tests/distributed_worker.py, and the same computation in one process here is the reference.

1. the gradient averaged over 2 ranks × batch B equals one process's gradient on the same 2B examples;
2. 20 steps on 2 ranks give the parameters 20 steps of one process with the global batch give (stored
   activations and reversible backprop);
3. ActNorm's data-dependent initial scale and bias equal those of one process on the global batch;
4. the replicas are identical at the end, rank 0 alone wrote the run directory (one checkpoint, one log line
   per step), and one process resumes the 2-rank checkpoint with the same global batch;
and the failures: a replica that differs stops every rank naming the step and the rank; a rank killed with
SIGKILL ends the run (mpiexec's process manager ends the others) instead of hanging, and so does an exception
raised on one rank alone (the trainer calls MPI_Abort with its message); SIGTERM to mpiexec stops
every rank at the same step with one checkpoint.

Skipped when mpi4py or mpiexec is missing (``pip install -e ".[mpi]"``). Each rank runs one BLAS thread.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time

import numpy as np
import pytest

import nflow
from nflow.checkpoint import load_checkpoint
from nflow.reversible import nll_and_backward
from nflow.train import ResumeError, Trainer

from distributed_worker import (PER_RANK_BATCH, STEPS, actnorm_state, config, global_batch, make_data, make_labels,
                                make_model, trained_runs)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(REPO, "tests", "distributed_worker.py")
RANKS = 2
RUN_TIMEOUT = 120   # seconds; a hang fails the test instead of stalling the suite


def find_mpiexec():
    """The ``mpiexec`` that belongs to the MPI mpi4py was installed with: the one the ``mpich`` wheel puts next
    to this interpreter (its scripts directory) comes first, as a system MPI first on PATH may be another MPI
    that cannot start mpi4py's processes; PATH is the fallback."""
    for directory in (os.path.dirname(sys.executable), sysconfig.get_path("scripts")):
        candidate = os.path.join(directory, "mpiexec")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("mpiexec")


try:
    import mpi4py  # noqa: F401
    MISSING = None if find_mpiexec() else "mpiexec not found next to Python or on PATH"
except ImportError:
    MISSING = 'mpi4py is not installed (pip install -e ".[mpi]")'
pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")


def mpiexec(scenario, out, **popen):
    env = dict(os.environ, PYTHONPATH=REPO, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    return subprocess.Popen([find_mpiexec(), "-n", str(RANKS), sys.executable, WORKER, scenario, str(out)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def run(scenario, out):
    proc = mpiexec(scenario, out)
    try:
        stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"mpiexec -n {RANKS} {scenario} did not finish in {RUN_TIMEOUT} s")
    return proc.returncode, stdout, stderr


def reference_trainer(run_dir, steps=STEPS, reversible=False, classes=None):
    """One process, the global batch RANKS × B, the model rank 0 builds (with the labels, if ``classes``)."""
    cfg = config(steps=steps, reversible=reversible)
    cfg.batch_size = RANKS * PER_RANK_BATCH
    return Trainer(make_model(seed=100, num_classes=classes), make_data(), cfg, run_dir, dtype=np.float64,
                   labels=make_labels() if classes else None)


def params_of(npz, n):
    return [npz[f"p{i}"] for i in range(n)]


def assert_close(got, want, rtol, what):
    """Every element within ``rtol`` of the largest magnitude among all of ``want``'s arrays (the whole vector
    of parameters or gradients: a tensor whose exact value is 0, such as an ActNorm bias's gradient right after
    its initialisation, holds rounding noise whose own relative error means nothing)."""
    scale = max(float(np.abs(w).max()) for w in want)
    for i, (g, w) in enumerate(zip(got, want)):
        err = float(np.abs(g - w).max()) / scale
        assert err <= rtol, f"{what} {i}: difference {err:.3g} of the largest magnitude {scale:.3g} > {rtol}"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("distributed")
    code, stdout, stderr = run("train", out)
    assert code == 0, f"mpiexec failed ({code}):\n{stdout}\n{stderr}"
    return out


def test_averaged_gradient_on_2_ranks_equals_one_process_on_the_global_batch(trained):
    model = make_model(seed=11)
    model.train(True)
    loss = nll_and_backward(model, nflow.tensor(global_batch(RANKS * PER_RANK_BATCH)), reversible=False)["loss"]
    want = [p.grad for p in model.parameters()]
    for rank in range(RANKS):
        got = np.load(trained / f"grad_rank{rank}.npz")
        assert_close([got[f"grad{i}"] for i in range(len(want))], want, 1e-10, f"rank {rank}: gradient")
        assert abs(float(got["loss"]) - loss) <= 1e-12 * abs(loss)


def test_actnorm_initialises_from_the_global_batch(trained):
    model = make_model(seed=11)
    model.train(True)
    nll_and_backward(model, nflow.tensor(global_batch(RANKS * PER_RANK_BATCH)), reversible=False)
    want = actnorm_state(model)
    # The statistics of one rank's own half differ: the test can tell a per-rank initialisation apart.
    local = make_model(seed=11)
    local.train(True)
    nll_and_backward(local, nflow.tensor(global_batch(RANKS * PER_RANK_BATCH)[:PER_RANK_BATCH]), reversible=False)
    assert not np.allclose(actnorm_state(local)["actnorm0_log_scale"], want["actnorm0_log_scale"], rtol=1e-3)
    for rank in range(RANKS):
        got = np.load(trained / f"grad_rank{rank}.npz")
        for name, value in want.items():
            np.testing.assert_allclose(got[name], value, rtol=1e-12, atol=1e-14, err_msg=f"rank {rank}: {name}")


@pytest.mark.parametrize("name", sorted(trained_runs()))
def test_20_steps_on_2_ranks_equal_20_steps_of_one_process(trained, tmp_path, name):
    reversible, classes = trained_runs()[name]
    reference = reference_trainer(tmp_path, reversible=reversible, classes=classes)
    result = reference.fit()
    want = [p.data for p in reference.params]
    ranks = [np.load(trained / f"final_{name}_rank{r}.npz") for r in range(RANKS)]
    for rank, got in enumerate(ranks):
        assert int(got["step"]) == STEPS
        assert_close(params_of(got, len(want)), want, 1e-9, f"rank {rank}: parameter")
        assert abs(float(got["loss"]) - result.loss) <= 1e-9 * abs(result.loss)
    for a, b in zip(params_of(ranks[0], len(want)), params_of(ranks[1], len(want))):
        assert np.array_equal(a, b), "the replicas are not bit-identical"


def test_rank_0_alone_wrote_the_run_directory(trained):
    run_dir = trained / "run_stored"
    assert sorted(os.listdir(run_dir)) == ["checkpoint.npz", "curve.png", "evaluations.jsonl", "log.jsonl"]
    with open(run_dir / "log.jsonl", encoding="utf-8") as f:
        steps = [json.loads(line)["step"] for line in f]
    assert steps == list(range(1, STEPS + 1))   # one line per step: no second writer
    ckpt = load_checkpoint(str(run_dir / "checkpoint.npz"))
    assert ckpt.step == STEPS and ckpt.extra["ranks"] == RANKS


def test_one_process_resumes_a_2_rank_checkpoint(trained, tmp_path):
    checkpoint = str(trained / "run_stored" / "checkpoint.npz")
    resumed = reference_trainer(tmp_path / "resumed", steps=STEPS + 5)
    result = resumed.fit(resume=checkpoint)
    assert result.status == "completed" and result.step == STEPS + 5
    uninterrupted = reference_trainer(tmp_path / "whole", steps=STEPS + 5)
    uninterrupted.fit()
    assert_close([p.data for p in resumed.params], [p.data for p in uninterrupted.params], 1e-9, "parameter")
    # Another global batch is another run: refused, saying what to change.
    other = Trainer(make_model(seed=100), make_data(), config(steps=STEPS + 5), tmp_path / "other", dtype=np.float64)
    with pytest.raises(ResumeError, match=r"global batch was 8 \(2 rank\(s\) × 4\), this run's is 4"):
        other.fit(resume=checkpoint)


def test_a_replica_that_differs_stops_every_rank_naming_step_and_rank(tmp_path):
    code, stdout, stderr = run("mismatch", tmp_path)
    assert code == 0, stderr
    lines = [(tmp_path / f"rank{r}.txt").read_text() for r in range(RANKS)]
    for rank, line in enumerate(lines):
        # rank 1 changed a parameter after step 3; the checksums are compared every 2 steps
        assert line.startswith(f"rank {rank} stopped: the model replicas differ at step 4: rank(s) [1]"), line


def test_a_killed_rank_ends_the_run_instead_of_hanging(tmp_path):
    started = time.monotonic()
    code, stdout, stderr = run("killed", tmp_path)
    assert code != 0
    assert "BAD TERMINATION" in stdout + stderr, stdout + stderr   # MPICH's process manager names it
    assert time.monotonic() - started < RUN_TIMEOUT


def test_an_exception_on_one_rank_ends_every_rank_with_its_message(tmp_path):
    code, stdout, stderr = run("failing", tmp_path)
    assert code != 0
    assert "nflow: rank 1 of 2 failed at step 4: RuntimeError: an error on rank 1 alone; all ranks stopped" in stderr


def test_sigterm_to_mpiexec_stops_every_rank_at_the_same_step_with_one_checkpoint(tmp_path):
    proc = mpiexec("sigterm", tmp_path)
    log = tmp_path / "run" / "log.jsonl"
    deadline = time.monotonic() + RUN_TIMEOUT
    while not (log.exists() and log.read_text().count("\n") >= 3):
        assert time.monotonic() < deadline and proc.poll() is None, "the run did not start"
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT)
    assert proc.returncode == 0, stdout + stderr
    lines = [(tmp_path / f"rank{r}.txt").read_text() for r in range(RANKS)]
    steps = {line.split(" at step ")[1].split()[0] for line in lines}
    assert len(steps) == 1 and all("interrupted" in line and "signal 15" in line for line in lines), lines
    assert load_checkpoint(str(tmp_path / "run" / "checkpoint.npz")).step == int(steps.pop())
    assert sorted(os.listdir(tmp_path / "run")) == ["checkpoint.npz", "curve.png", "evaluations.jsonl", "log.jsonl"]
