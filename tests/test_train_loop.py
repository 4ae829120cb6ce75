"""The training loop, driven by a small genuine density model built here from nflow.nn: an element-wise affine
flow z = (x - μ) · exp(-log σ) onto a standard normal, whose log-density has a closed form to check against.

Covers: bits/dim, warm-up, learning a Gaussian's mean and std, the step log, exact (bit-for-bit) resumption
after a clean stop, after SIGINT, and after a second signal that aborts a step; the non-finite guard; and a
SIGTERM sent to a training process in a subprocess."""
import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import nflow
import nflow.functional as F
from nflow.checkpoint import load_checkpoint
from nflow.nn import Module, Parameter
from nflow.tensor import Function
from nflow.train import (MAX_CONSECUTIVE_SKIPS, TrainConfig, Trainer, TrainingDiverged, evaluate,
                         make_sample_hook, read_log, warmup_lr)

LOG_2PI = math.log(2 * math.pi)


class DiagonalGaussian(Module):
    """log p(x) = Σ_d [ -½ ((x_d - μ_d) / σ_d)² - log σ_d - ½ log 2π ], σ = exp(log_sigma): an affine flow
    x -> z with log|det| = -Σ log σ_d onto N(0, I)."""

    def __init__(self, shape):
        super().__init__()
        self.shape, self.dims = tuple(shape), int(np.prod(shape))
        self.mu = Parameter(np.zeros(self.dims, np.float32))
        self.log_sigma = Parameter(np.zeros(self.dims, np.float32))

    def log_prob(self, x):
        x = F.reshape(x, (x.shape[0], self.dims))
        z = (x - self.mu) * F.exp(-self.log_sigma)
        return F.sum(z * z * -0.5 - self.log_sigma, axis=1) - 0.5 * self.dims * LOG_2PI

    def sample(self, n, temperature=1.0, seed=None):
        eps = np.random.default_rng(seed).standard_normal((n, self.dims)) * temperature
        x = self.mu.numpy() + np.exp(self.log_sigma.numpy()) * eps
        return x.reshape((n,) + self.shape).astype(np.float32)


class InfGrad(Function):
    """Identity forward; backward hands back an infinite gradient (a stand-in for an exploding layer)."""

    def forward(self, x):
        return x.copy()

    def backward(self, gy):
        return np.full_like(gy, np.inf)


class FaultyGaussian(DiagonalGaussian):
    """The same model, with faults injected at chosen calls of log_prob (1-based): a NaN log-density, an
    infinite gradient, or signals sent to this very process in the middle of the forward pass."""

    def __init__(self, shape, nan_calls=(), inf_grad_calls=(), signal_calls=None, delay=0.0):
        super().__init__(shape)
        self.nan_calls, self.inf_grad_calls = set(nan_calls), set(inf_grad_calls)
        self.signal_calls, self.delay, self.calls = dict(signal_calls or {}), delay, 0

    def log_prob(self, x):
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        lp = super().log_prob(x)
        for signum in self.signal_calls.get(self.calls, ()):
            os.kill(os.getpid(), signum)
        if self.calls in self.nan_calls:
            lp = lp * np.float32(np.nan)
        if self.calls in self.inf_grad_calls:
            lp = InfGrad()(lp)
        return lp


def image_data(n=40, shape=(1, 3, 3), seed=0):
    """uint8 'images' with a per-pixel mean and spread, so a Gaussian has something to learn."""
    r = np.random.default_rng(seed)
    centre = r.integers(60, 200, size=shape)
    return np.clip(centre + r.normal(0, 25, size=(n,) + shape), 0, 255).astype(np.uint8)


CONFIG = dict(batch_size=8, lr=0.05, warmup_steps=4, max_grad_norm=0.5, seed=3, checkpoint_every=0, progress=False)


def train(run_dir, steps, data=None, model=None, resume=None, on_sample=None, on_evaluate=None, **overrides):
    data = image_data() if data is None else data
    model = DiagonalGaussian(data.shape[1:]) if model is None else model
    config = TrainConfig(steps=steps, **dict(CONFIG, **overrides))
    trainer = Trainer(model, data, config, run_dir, run_config={"model": "diag"}, on_sample=on_sample,
                      on_evaluate=on_evaluate)
    return model, trainer, trainer.fit(resume=resume)


def without_seconds(records):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


def assert_same_state(trainer_a, trainer_b):
    a, b = trainer_a.model.state_dict(), trainer_b.model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].tobytes() == b[k].tobytes(), f"parameter {k} differs"
    oa, ob = trainer_a.optimizer.state_dict(), trainer_b.optimizer.state_dict()
    assert oa.keys() == ob.keys()
    for k in oa:
        assert np.asarray(oa[k]).tobytes() == np.asarray(ob[k]).tobytes(), f"optimizer state {k} differs"
    assert trainer_a.rng.bit_generator.state == trainer_b.rng.bit_generator.state


# -------------------------------------------------------------------------------------------------------------
# Pieces
# -------------------------------------------------------------------------------------------------------------
def test_bits_per_dim_known_values():
    ln2 = math.log(2)
    assert nflow.bits_per_dim(-784 * ln2 * 3, (1, 28, 28)) == pytest.approx(3 + 8)
    assert nflow.bits_per_dim(-784 * ln2 * 3, 784, n_bins=1) == pytest.approx(3)
    assert nflow.bits_per_dim(0.0, (3, 32, 32), n_bins=32) == pytest.approx(5)
    lp = np.array([-2 * ln2 * 2, -2 * ln2 * 4], dtype=np.float32)
    np.testing.assert_allclose(nflow.bits_per_dim(lp, (2,), n_bins=4), [2 + 2, 4 + 2], rtol=1e-6)
    t = nflow.tensor(lp, requires_grad=True)
    out = nflow.bits_per_dim(t, (2,), n_bins=4)
    assert isinstance(out, nflow.Tensor)
    F.sum(out).backward()
    np.testing.assert_allclose(t.grad, -1 / (2 * ln2), rtol=1e-6)  # a loss can be written in bits/dim
    with pytest.raises(ValueError):
        nflow.bits_per_dim(0.0, (0, 3))


def test_warmup_is_a_linear_ramp():
    assert [warmup_lr(k, 1.0, 4) for k in (1, 2, 3, 4, 5, 100)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert warmup_lr(1, 0.3, 0) == 0.3


def test_the_test_model_has_the_closed_form_log_density(rng):
    model = DiagonalGaussian((3,))
    mu, log_sigma = np.array([0.5, -1.0, 2.0], np.float32), np.array([0.1, -0.3, 0.7], np.float32)
    model.mu.data, model.log_sigma.data = mu.copy(), log_sigma.copy()
    x = rng.normal(size=(6, 3)).astype(np.float32)
    sigma = np.exp(log_sigma.astype(np.float64))
    expected = (-0.5 * ((x - mu) / sigma) ** 2 - np.log(sigma) - 0.5 * LOG_2PI).sum(axis=1)
    np.testing.assert_allclose(model.log_prob(nflow.tensor(x)).numpy(), expected, rtol=1e-5)


def test_train_config_rejects_bad_settings():
    for bad in (dict(steps=0), dict(steps=5, lr=0), dict(steps=5, batch_size=0), dict(steps=5, max_grad_norm=-1),
                dict(steps=5, warmup_steps=-1), dict(steps=5, n_bins=0)):
        with pytest.raises(ValueError):
            TrainConfig(**bad)
    c = TrainConfig(steps=5, betas=[0.8, 0.99])
    assert TrainConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    assert MAX_CONSECUTIVE_SKIPS == TrainConfig(steps=1).max_consecutive_skips


# -------------------------------------------------------------------------------------------------------------
# Learning
# -------------------------------------------------------------------------------------------------------------
def test_trainer_learns_the_mean_and_std_of_gaussian_data(tmp_path):
    r = np.random.default_rng(0)
    true_mu, true_sigma = np.array([1.0, -3.0]), np.array([0.5, 2.0])
    data = (r.normal(size=(4096, 2)) * true_sigma + true_mu).astype(np.float32)
    model, _, result = train(tmp_path, 400, data=data, batch_size=256, warmup_steps=20, max_grad_norm=None)
    assert result.status == "completed" and result.step == 400
    np.testing.assert_allclose(model.mu.numpy(), true_mu, atol=0.06)
    np.testing.assert_allclose(np.exp(model.log_sigma.numpy()), true_sigma, rtol=0.06)
    # The NLL of the fitted model approaches the data's entropy, Σ ½ log(2πe σ²) nats.
    entropy = float(np.sum(0.5 * np.log(2 * np.pi * np.e * true_sigma**2)))
    assert evaluate(model, data)["nll"] == pytest.approx(entropy, abs=0.03)


def test_step_log_curve_and_checkpoint_of_a_run_on_images(tmp_path):
    data = image_data()
    model, trainer, result = train(tmp_path, 10, data=data, checkpoint_every=4)
    records = read_log(tmp_path / "log.jsonl")
    assert [r["step"] for r in records] == list(range(1, 11))
    for r in records:
        assert set(r) == {"step", "loss", "bpd", "grad_norm", "lr", "seconds", "skipped"} and not r["skipped"]
        assert r["bpd"] == pytest.approx(r["loss"] / (9 * math.log(2)) + 8)
        assert r["lr"] == pytest.approx(0.05 * min(1.0, r["step"] / 4))
    assert records[-1]["loss"] < records[0]["loss"]
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ck = load_checkpoint(tmp_path / "checkpoint.npz")
    assert ck.step == 10 and ck.config["run"] == {"model": "diag"} and ck.config["train"]["lr"] == 0.05
    np.testing.assert_array_equal(ck.model_state["mu"], model.mu.numpy())
    assert result.bpd == pytest.approx(records[-1]["bpd"])


def test_progress_line_reports_rate_loss_and_bpd(tmp_path):
    import io

    stream = io.StringIO()
    config = TrainConfig(steps=3, batch_size=8, progress=True, checkpoint_every=0)
    Trainer(DiagonalGaussian((1, 3, 3)), image_data(), config, tmp_path, progress_stream=stream).fit()
    text = stream.getvalue()
    assert "3/3" in text and "steps/s" in text and "bpd" in text and "loss" in text


def test_evaluate_matches_the_closed_form_and_restores_training_mode(rng):
    model = DiagonalGaussian((2,))
    model.mu.data = np.array([0.3, -0.2], np.float32)
    x = rng.normal(size=(1000, 2)).astype(np.float32)
    expected = -np.mean((-0.5 * (x.astype(np.float64) - [0.3, -0.2]) ** 2 - 0.5 * LOG_2PI).sum(axis=1))
    out = evaluate(model, x, batch_size=300)
    assert out["n"] == 1000 and out["n_nonfinite"] == 0
    assert out["nll"] == pytest.approx(expected, rel=1e-5)
    assert out["bpd"] == pytest.approx(expected / (2 * math.log(2)), rel=1e-5)
    assert model.training
    images, image_model = image_data(), DiagonalGaussian((1, 3, 3))
    a, b, c = (evaluate(image_model, images, seed=s) for s in (1, 1, 2))
    assert a == b and a != c  # the dequantization noise follows the seed
    assert a["bpd"] > 8  # a unit Gaussian at 0 is a poor model of pixels in [0.2, 0.8]


def test_log_prob_of_the_wrong_shape_is_reported(tmp_path):
    class Summed(DiagonalGaussian):
        def log_prob(self, x):
            return F.sum(super().log_prob(x))

    with pytest.raises(TypeError, match=r"Summed.log_prob must return a Tensor of shape \(8,\)"):
        train(tmp_path, 2, model=Summed((1, 3, 3)))


def test_sample_hook_writes_pngs_for_images_and_points(tmp_path):
    seen = []
    hook = make_sample_hook(DiagonalGaussian((1, 3, 3)), tmp_path / "img", n=4, nrow=2)
    _, _, result = train(tmp_path / "run", 4, on_sample=lambda step: (seen.append(step), hook(step)), sample_every=2)
    assert seen == [2, 4]
    assert sorted(os.listdir(tmp_path / "img")) == ["samples_0000002.png", "samples_0000004.png"]
    make_sample_hook(DiagonalGaussian((2,)), tmp_path / "toy", n=100)(7)
    assert (tmp_path / "toy" / "samples_0000007.png").read_bytes()[:4] == b"\x89PNG"


# -------------------------------------------------------------------------------------------------------------
# Exact resumption
# -------------------------------------------------------------------------------------------------------------
TOTAL = 12  # 5 steps per epoch at 40 examples / 8: the runs cross two reshuffles


def test_resume_continues_bit_for_bit(tmp_path):
    _, full, _ = train(tmp_path / "full", TOTAL)
    _, first, r1 = train(tmp_path / "split", 5)
    assert r1.step == 5
    _, second, r2 = train(tmp_path / "split", TOTAL, resume=tmp_path / "split" / "checkpoint.npz")
    assert r2.status == "completed" and r2.step == TOTAL
    assert_same_state(full, second)
    assert without_seconds(read_log(tmp_path / "full" / "log.jsonl")) == \
        without_seconds(read_log(tmp_path / "split" / "log.jsonl"))


def test_evaluations_are_logged_every_k_steps_and_leave_the_training_trajectory_alone(tmp_path):
    """on_evaluate runs every eval_every steps on held-out data; its numbers (here: evaluate on other images,
    checked against a direct call) go to evaluations.jsonl; parameters, optimizer and noise Generator end
    bit for bit as in a run without evaluations; a resumed run keeps the evaluations up to its checkpoint."""
    held_out = image_data(n=16, seed=9)
    calls = []

    def on_evaluate(step):
        calls.append(step)
        r = evaluate(model, held_out, seed=0)
        return {"test_nll": r["nll"], "test_bpd": r["bpd"]}

    _, plain, _ = train(tmp_path / "plain", TOTAL)
    model = DiagonalGaussian(held_out.shape[1:])
    _, with_eval, _ = train(tmp_path / "eval", TOTAL, model=model, on_evaluate=on_evaluate, eval_every=3)
    assert calls == [k for k in range(1, TOTAL + 1) if k % 3 == 0]
    assert_same_state(plain, with_eval)
    logged = read_log(tmp_path / "eval" / "evaluations.jsonl")
    assert [r["step"] for r in logged] == calls
    assert logged[-1]["test_bpd"] == pytest.approx(evaluate(model, held_out, seed=0)["bpd"], rel=1e-12)
    # resumed from step 5: the evaluation of step 3 stays, those of steps 6, 9, ... are done again, once each
    _, first, _ = train(tmp_path / "split", 5, checkpoint_every=5, on_evaluate=on_evaluate, eval_every=3)
    train(tmp_path / "split", TOTAL, resume=tmp_path / "split" / "checkpoint.npz", on_evaluate=on_evaluate,
          eval_every=3)
    assert [r["step"] for r in read_log(tmp_path / "split" / "evaluations.jsonl")] == \
        [k for k in range(1, TOTAL + 1) if k % 3 == 0]


def test_resume_without_the_optimizer_state_would_differ(tmp_path):
    """The negative control: the comparison above can fail; losing Adam's moments changes the run."""
    _, full, _ = train(tmp_path / "full", TOTAL)
    train(tmp_path / "split", 5)
    ck = load_checkpoint(tmp_path / "split" / "checkpoint.npz")
    ck.optimizer_state = {"step_count": np.array(0), "lr": np.array(0.05)}  # a fresh Adam: no moments
    _, second, _ = train(tmp_path / "split", TOTAL, resume=ck)
    assert full.model.state_dict()["mu"].tobytes() != second.model.state_dict()["mu"].tobytes()


def test_sigint_stops_after_the_step_saves_and_restores_the_handlers(tmp_path):
    def sentinel(signum, frame):
        raise AssertionError("the trainer's handler should be active")

    previous = signal.signal(signal.SIGINT, sentinel)
    try:
        _, full, _ = train(tmp_path / "full", TOTAL)
        stop_at_4 = lambda step: os.kill(os.getpid(), signal.SIGINT) if step == 4 else None  # noqa: E731
        _, _, r1 = train(tmp_path / "split", TOTAL, on_sample=stop_at_4, sample_every=1)
        assert signal.getsignal(signal.SIGINT) is sentinel
    finally:
        signal.signal(signal.SIGINT, previous)
    assert r1.status == "interrupted" and r1.signal == signal.SIGINT and r1.step == 4
    assert load_checkpoint(tmp_path / "split" / "checkpoint.npz").step == 4
    _, second, _ = train(tmp_path / "split", TOTAL, resume=tmp_path / "split" / "checkpoint.npz")
    assert_same_state(full, second)


@pytest.mark.parametrize("signals", [(signal.SIGTERM, signal.SIGTERM), (signal.SIGTERM, signal.SIGINT, signal.SIGTERM)])
def test_a_second_signal_aborts_the_step_and_the_checkpoint_is_the_previous_step(tmp_path, signals):
    _, full, _ = train(tmp_path / "full", TOTAL)
    faulty = FaultyGaussian((1, 3, 3), signal_calls={6: signals})  # sent in the forward pass of step 6
    _, _, r1 = train(tmp_path / "split", TOTAL, model=faulty)
    assert r1.status == "interrupted" and r1.signal == signal.SIGTERM and r1.step == 5
    assert [r["step"] for r in read_log(tmp_path / "split" / "log.jsonl")] == [1, 2, 3, 4, 5]
    assert load_checkpoint(tmp_path / "split" / "checkpoint.npz").step == 5
    _, second, _ = train(tmp_path / "split", TOTAL, resume=tmp_path / "split" / "checkpoint.npz")
    assert_same_state(full, second)


def test_resume_after_a_crash_drops_log_lines_past_the_checkpoint(tmp_path):
    """A killed process (SIGKILL, power cut) leaves log lines after its last checkpoint, maybe a half line."""
    import shutil

    _, full, _ = train(tmp_path / "full", TOTAL)
    run = tmp_path / "crashed"
    keep = lambda step: shutil.copy(run / "checkpoint.npz", tmp_path / "at3.npz") if step == 3 else None  # noqa: E731
    train(run, 7, checkpoint_every=3, on_sample=keep, sample_every=1)
    with open(run / "log.jsonl", "a") as f:
        f.write('{"step": 8, "loss": 1.2')  # the line being written when the process died
    assert [r["step"] for r in read_log(run / "log.jsonl")] == list(range(1, 8))
    _, second, _ = train(run, TOTAL, resume=tmp_path / "at3.npz")
    assert_same_state(full, second)
    assert without_seconds(read_log(run / "log.jsonl")) == without_seconds(read_log(tmp_path / "full" / "log.jsonl"))


def test_resume_refuses_settings_that_change_the_trajectory(tmp_path):
    train(tmp_path, 3)
    with pytest.raises(ValueError, match="lr"):
        train(tmp_path, 6, resume=tmp_path / "checkpoint.npz", lr=0.01)
    with pytest.raises(ValueError, match="examples"):
        train(tmp_path, 6, data=image_data(n=48), resume=tmp_path / "checkpoint.npz")


# -------------------------------------------------------------------------------------------------------------
# The non-finite guard
# -------------------------------------------------------------------------------------------------------------
def test_non_finite_loss_or_gradient_skips_the_step_and_training_goes_on(tmp_path):
    model = FaultyGaussian((1, 3, 3), nan_calls={3, 4}, inf_grad_calls={6})
    snapshots = {}
    _, _, result = train(tmp_path, 8, model=model, sample_every=1,
                         on_sample=lambda step: snapshots.__setitem__(step, model.mu.numpy().copy()))
    assert result.status == "completed" and result.skipped_steps == 3
    records = read_log(tmp_path / "log.jsonl")
    assert [r["skipped"] for r in records] == [False, False, True, True, False, True, False, False]
    assert records[2]["loss"] is None and records[2]["reason"] == "non-finite loss"
    assert records[5]["reason"] == "non-finite gradient norm" and records[5]["loss"] is not None
    np.testing.assert_array_equal(snapshots[4], snapshots[2])  # skipped steps leave the parameters alone
    np.testing.assert_array_equal(snapshots[6], snapshots[5])
    assert not np.array_equal(snapshots[5], snapshots[4])
    assert np.isfinite(model.mu.numpy()).all()


def test_too_many_consecutive_skips_stop_with_a_clear_message(tmp_path):
    previous = signal.getsignal(signal.SIGTERM)
    model = FaultyGaussian((1, 3, 3), nan_calls=range(5, 1000))
    with pytest.raises(TrainingDiverged, match="3 consecutive steps") as info:
        train(tmp_path, 50, model=model, checkpoint_every=2, max_consecutive_skips=3)
    assert "max_consecutive_skips=3" in str(info.value) and "step 7" in str(info.value)
    assert signal.getsignal(signal.SIGTERM) is previous
    ck = load_checkpoint(tmp_path / "checkpoint.npz")  # the last periodic one: step 6, parameters of step 4
    assert ck.step == 6 and np.isfinite(ck.model_state["mu"]).all()
    assert len(read_log(tmp_path / "log.jsonl")) == 7


def test_divergence_without_any_checkpoint_writes_none(tmp_path):
    with pytest.raises(TrainingDiverged, match="no checkpoint was written"):
        train(tmp_path, 50, model=FaultyGaussian((1, 3, 3), nan_calls=range(1, 1000)), max_consecutive_skips=4)
    assert not (tmp_path / "checkpoint.npz").exists()


def test_non_finite_parameters_are_never_saved(tmp_path):
    model, trainer, _ = train(tmp_path, 2)
    before = (tmp_path / "checkpoint.npz").read_bytes()
    model.log_sigma.data[0] = np.inf
    with pytest.raises(TrainingDiverged, match="NaN or inf"):
        trainer.save()
    assert (tmp_path / "checkpoint.npz").read_bytes() == before


# -------------------------------------------------------------------------------------------------------------
# SIGTERM to a real training process
# -------------------------------------------------------------------------------------------------------------
SCRIPT = """
import sys
sys.path[:0] = [{tests!r}, {root!r}]  # this checkout's tests and nflow, not an installed copy's
from test_train_loop import FaultyGaussian, image_data
from nflow.train import TrainConfig, Trainer
model = FaultyGaussian((1, 3, 3), delay=0.01)  # slow steps, so the signal lands mid-run
config = TrainConfig(steps=100000, batch_size=8, checkpoint_every=0, progress=False)
result = Trainer(model, image_data(), config, {run!r}).fit()
print(result.status, result.signal, result.step, flush=True)
"""


def test_sigterm_to_a_training_process_leaves_a_loadable_checkpoint(tmp_path):
    run = tmp_path / "run"
    script = tmp_path / "train.py"
    tests = os.path.dirname(os.path.abspath(__file__))
    script.write_text(SCRIPT.format(tests=tests, root=os.path.dirname(tests), run=str(run)))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while len(read_log(run / "log.jsonl")) < 3:
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the training process did not start"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    status, signum, step = out.split()
    assert status == "interrupted" and int(signum) == signal.SIGTERM
    ck = load_checkpoint(run / "checkpoint.npz")
    assert ck.step == int(step) >= 3 and ck.step < 100000
    assert [r["step"] for r in read_log(run / "log.jsonl")] == list(range(1, ck.step + 1))


def test_run_config_must_be_json_serialisable(tmp_path):
    with pytest.raises(TypeError, match="run_config"):
        Trainer(DiagonalGaussian((1, 3, 3)), image_data(), TrainConfig(steps=1), tmp_path, run_config={"f": print})
