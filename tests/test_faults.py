"""Fault injection: every failure a user can cause ends in one clear message, and no work is lost.

Faults injected here, each against the real code path (a real child process, a real file system):

- SIGKILL in the middle of checkpoint writes (``save_checkpoint`` in a loop, and ``nflow train``), then a load
  and a resume;
- a full disk (ENOSPC) partway through a checkpoint save, directly and from inside ``Trainer.fit``;
- SIGTERM and SIGINT sent to ``nflow sample`` and ``nflow eval`` while they work.

The non-finite-loss guard (skip, count, stop after ``max_consecutive_skips`` with the last finite checkpoint) is
covered in tests/test_train_loop.py and not repeated here.
"""
import errno
import io
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import zlib

import numpy as np
import pytest

import nflow
from nflow.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from nflow.data import sample_toy
from nflow.models import RealNVP
from nflow.train import TrainConfig, Trainer, read_log
from cli_helpers import PNG_SIGNATURE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Child processes: this checkout's nflow, one thread each (the test machine has 2 cores).
ENV = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1", MKL_NUM_THREADS="1",
           PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
NO_SPACE = "No space left on device"
CHILD_TIMEOUT = 60  # seconds any child process may take before the test gives up on it


def temp_name_pattern(name):
    """The name ``nflow.atomic.atomic_write`` gives its temporary files for a target called ``name``."""
    return re.compile(r"\." + re.escape(name) + r"\..+\.tmp\Z")


def temp_files(directory, name):
    pattern = temp_name_pattern(name)
    return {f for f in os.listdir(directory) if pattern.match(f)}


def stop(proc):
    """Kill ``proc`` if it still runs and collect it (no zombie, no unclosed pipe)."""
    if proc.poll() is None:
        proc.kill()
    proc.communicate()


# -------------------------------------------------------------------------------------------------------------
# 1. SIGKILL during checkpoint writes
# -------------------------------------------------------------------------------------------------------------
# The state saved at step k, a deterministic function of k (shared verbatim by the writer process and the test):
# 4 MB in all, so one save takes milliseconds and most kills land inside a write.
STATE_CODE = """
import numpy as np

N_VALUES = 262144

def checkpoint_state(k):
    base = np.arange(N_VALUES, dtype=np.float32)
    model = {f"w{i}": base + np.float32(8 * k + i) for i in range(3)}
    optim = {"m": -base - np.float32(k), "t": np.array(k, dtype=np.int64)}
    return model, optim
"""
_state_namespace = {}
exec(STATE_CODE, _state_namespace)
checkpoint_state = _state_namespace["checkpoint_state"]

WRITER = STATE_CODE + """
import sys, time
from nflow.checkpoint import save_checkpoint
path, k = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 60  # never outlive a test that forgot to kill it
while time.monotonic() < deadline:
    model, optim = checkpoint_state(k)
    save_checkpoint(path, model, optim, k, {"k": k}, {"k": k}, {"k": k})
    k += 1
"""
KILL_ROUNDS = 10


def kill_once_it_has_saved(proc, saved, who, delay, poll):
    """Wait until ``saved()`` (the child wrote its first checkpoint), wait ``delay`` seconds more, SIGKILL the
    child and collect it; return its stderr. Fails if the child exits or never saves within CHILD_TIMEOUT."""
    try:
        deadline = time.monotonic() + CHILD_TIMEOUT
        while not saved():
            assert proc.poll() is None, f"{who} exited with {proc.returncode}: {proc.communicate()[1]}"
            assert time.monotonic() < deadline, f"{who} never saved a checkpoint"
            time.sleep(poll)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        return proc.communicate(timeout=CHILD_TIMEOUT)[1]
    finally:
        stop(proc)


def _identity(path):
    """What changes whenever the file at ``path`` is replaced or rewritten: (inode, modification time)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def test_sigkill_during_checkpoint_writes_leaves_a_complete_checkpoint(tmp_path):
    """Fault: a process saving 4 MB checkpoints back to back to one path is SIGKILLed at a random moment (seeded
    delays of 2-40 ms after its first save), ten times, each restart continuing from a higher step.
    Must hold after every kill: ``load_checkpoint`` succeeds and every array, and the JSON entries, are exactly
    the state of the step the file says (a complete checkpoint of one step, never a mix or a torn file); the
    only other files in the directory are stale ``.<name>.*.tmp`` files (a killed process cannot remove its
    temporary file); and at least one kill did land inside a write (else the test proved nothing)."""
    rng = np.random.default_rng(20240601)
    name = "ckpt.npz"
    path = tmp_path / name
    landed_mid_write = 0
    for round_ in range(KILL_ROUNDS):
        start = 1000 * (round_ + 1)
        identity_before, temps_before = _identity(path), temp_files(tmp_path, name)
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(start)], env=ENV,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        err = kill_once_it_has_saved(proc, lambda: _identity(path) not in (None, identity_before),
                                     "the writer", rng.uniform(0.002, 0.040), poll=0.001)
        assert proc.returncode == -signal.SIGKILL, f"the writer was not killed but exited {proc.returncode}: {err}"

        ck = load_checkpoint(path)
        assert start <= ck.step < start + 1000, (round_, ck.step)
        model, optim = checkpoint_state(ck.step)
        assert sorted(ck.model_state) == sorted(model) and sorted(ck.optimizer_state) == sorted(optim)
        for key, value in model.items():
            np.testing.assert_array_equal(ck.model_state[key], value, err_msg=f"step {ck.step}: model/{key}")
        for key, value in optim.items():
            np.testing.assert_array_equal(ck.optimizer_state[key], value, err_msg=f"step {ck.step}: optim/{key}")
        assert ck.rng_state == ck.config == ck.extra == {"k": ck.step}

        temps = temp_files(tmp_path, name)
        others = set(os.listdir(tmp_path)) - temps - {name}
        assert not others, f"files other than the checkpoint and stale temporary files: {sorted(others)}"
        landed_mid_write += bool(temps - temps_before)
    assert landed_mid_write >= 1, "no SIGKILL landed inside a checkpoint write"


TRAIN_FLAGS = ["--hidden", "8", "--couplings", "2", "--batch-size", "64", "--seed", "3", "--no-progress",
               "--eval-every", "0"]
RUN_STEPS = 100_000


def nflow_cli(*argv):
    return [sys.executable, "-m", "nflow", *[str(a) for a in argv]]


def test_sigkill_during_training_then_resume_continues_from_the_killed_step(tmp_path):
    """Fault: ``nflow train --checkpoint-every 1`` is SIGKILLed at a random moment (seeded, 50-400 ms after its
    first checkpoint appears), so the kill lands among per-step checkpoint writes and log appends.
    Must hold: the checkpoint loads (step s ≥ 1, fewer than the run's steps); ``nflow train --resume`` to s + 25
    steps exits 0 without a traceback; its log holds each step 1..s+25 exactly once; and its parameters and
    optimizer state are bit for bit those of an uninterrupted run of s + 25 steps (nothing lost, nothing
    repeated)."""
    rng = np.random.default_rng(7)
    run = tmp_path / "run"
    checkpoint = run / "checkpoint.npz"
    # far more steps than run before the kill on any machine, so the kill always lands mid-run
    proc = subprocess.Popen(nflow_cli("train", "--steps", RUN_STEPS, "--checkpoint-every", 1, "--out", run,
                                      *TRAIN_FLAGS),
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = kill_once_it_has_saved(proc, checkpoint.exists, "nflow train", rng.uniform(0.05, 0.4), poll=0.005)
    assert proc.returncode == -signal.SIGKILL, f"nflow train finished before the kill ({proc.returncode}): {err}"

    killed_step = load_checkpoint(checkpoint).step
    assert 1 <= killed_step < RUN_STEPS
    logged = [r["step"] for r in read_log(run / "log.jsonl")]
    assert logged[:killed_step] == list(range(1, killed_step + 1))

    target = killed_step + 25
    resumed = subprocess.run(nflow_cli("train", "--resume", checkpoint, "--steps", target, "--no-progress"),
                             env=ENV, capture_output=True, text=True, timeout=CHILD_TIMEOUT)
    assert resumed.returncode == 0 and "Traceback" not in resumed.stderr, resumed.stderr
    after = load_checkpoint(checkpoint)
    assert after.step == target
    assert [r["step"] for r in read_log(run / "log.jsonl")] == list(range(1, target + 1))
    # a half-written checkpoint the kill left behind is removed by the run that resumes (it owns the directory)
    assert not temp_files(run, "checkpoint.npz"), os.listdir(run)

    reference = subprocess.run(nflow_cli("train", "--steps", target, "--out", tmp_path / "ref", *TRAIN_FLAGS),
                               env=ENV, capture_output=True, text=True, timeout=CHILD_TIMEOUT)
    assert reference.returncode == 0, reference.stderr
    ref = load_checkpoint(tmp_path / "ref" / "checkpoint.npz")
    for mine, theirs, what in ((after.model_state, ref.model_state, "model"),
                               (after.optimizer_state, ref.optimizer_state, "optim")):
        assert mine.keys() == theirs.keys()
        for key in theirs:
            np.testing.assert_array_equal(mine[key], theirs[key], err_msg=f"{what}/{key} after kill + resume")


# -------------------------------------------------------------------------------------------------------------
# 2. A full disk during a save
# -------------------------------------------------------------------------------------------------------------
def full_disk_savez(real_savez, directory, fail_on_call=1, seen=None):
    """A ``numpy.savez`` whose ``fail_on_call``-th call writes the first half of the archive to its file and then
    fails as a full disk does; other calls are the real one. ``seen`` collects, at the failure, the directory's
    listing (to show a temporary file did exist then)."""
    calls = [0]

    def savez(file, *args, **kwds):
        calls[0] += 1
        if calls[0] != fail_on_call:
            return real_savez(file, *args, **kwds)
        buffer = io.BytesIO()
        real_savez(buffer, *args, **kwds)
        data = buffer.getvalue()
        file.write(data[:len(data) // 2])
        file.flush()
        if seen is not None:
            seen.extend(os.listdir(directory))
        raise OSError(errno.ENOSPC, NO_SPACE)

    savez.calls = calls
    return savez


def test_a_full_disk_during_a_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    """Fault: the save of step 2 writes half its archive, then the disk is full (``OSError(ENOSPC)`` from
    ``numpy.savez``, which ``nflow.checkpoint`` calls as ``np.savez``).
    Must hold: the save raises (OSError or CheckpointError) with a message saying "No space left"; the file at
    the path is byte for byte the step-1 checkpoint and loads as step 1 with step 1's arrays; the temporary file
    that held the partial write is gone, nothing else is left in the directory."""
    name = "ckpt.npz"
    path = tmp_path / name
    model, optim = checkpoint_state(1)
    save_checkpoint(path, model, optim, 1, {"k": 1}, {"k": 1}, {"k": 1})
    before = path.read_bytes()

    seen = []
    monkeypatch.setattr(np, "savez", full_disk_savez(np.savez, tmp_path, seen=seen))
    model2, optim2 = checkpoint_state(2)
    with pytest.raises((OSError, CheckpointError), match="No space left") as info:
        save_checkpoint(path, model2, optim2, 2, {"k": 2}, {"k": 2}, {"k": 2})
    monkeypatch.undo()
    if isinstance(info.value, CheckpointError):
        assert str(path) in str(info.value), "the message does not name the checkpoint"
    assert any(temp_name_pattern(name).match(f) for f in seen), f"the write did not go to a temporary file: {seen}"

    assert path.read_bytes() == before
    ck = load_checkpoint(path)
    assert ck.step == 1 and ck.extra == {"k": 1}
    for key, value in model.items():
        np.testing.assert_array_equal(ck.model_state[key], value)
    assert os.listdir(tmp_path) == [name], "a temporary file was left behind"


def tiny_trainer(run_dir, steps, checkpoint_every):
    """A 2-coupling RealNVP on 256 two-moons points, seeded: the same arguments train the same parameters."""
    nflow.seed(11)
    model = RealNVP(input_shape=(2,), hidden=8, couplings=2, depth=1)
    data = sample_toy("moons", 256, np.random.default_rng(0)).astype(np.float32)
    config = TrainConfig(steps=steps, batch_size=32, lr=1e-2, seed=5, checkpoint_every=checkpoint_every,
                         progress=False)
    return Trainer(model, data, config, run_dir, run_config={"model": "tiny realnvp"})


def test_a_full_disk_during_training_stops_the_run_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    """Fault: in ``Trainer.fit`` with ``checkpoint_every=1``, the checkpoint save of step 4 hits a full disk
    (ENOSPC after half the archive is written).
    Must hold: ``fit`` raises (OSError or CheckpointError, "No space left") at once: no further step or save is
    attempted, the signal handlers are restored; the checkpoint on disk is that of step 3, equal bit for bit
    to the checkpoint of an undisturbed 3-step run; no temporary file is left; and resuming from it to step 6
    gives the parameters of an undisturbed 6-step run."""
    fail_at = 4
    run = tmp_path / "run"
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    savez = full_disk_savez(np.savez, run, fail_on_call=fail_at)
    monkeypatch.setattr(np, "savez", savez)
    trainer = tiny_trainer(run, 10, checkpoint_every=1)
    with pytest.raises((OSError, CheckpointError), match="No space left"):
        trainer.fit()
    monkeypatch.undo()
    assert savez.calls[0] == fail_at and trainer.step == fail_at, "training went on after the failed save"
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers
    assert not [f for f in os.listdir(run) if f.endswith(".tmp")], os.listdir(run)

    ck = load_checkpoint(run / "checkpoint.npz")
    assert ck.step == fail_at - 1
    tiny_trainer(tmp_path / "ref3", fail_at - 1, checkpoint_every=0).fit()
    ref = load_checkpoint(tmp_path / "ref3" / "checkpoint.npz")
    for key in ref.model_state:
        np.testing.assert_array_equal(ck.model_state[key], ref.model_state[key], err_msg=key)
    for key in ref.optimizer_state:
        np.testing.assert_array_equal(ck.optimizer_state[key], ref.optimizer_state[key], err_msg=key)

    resumed = tiny_trainer(run, 6, checkpoint_every=1)
    assert resumed.fit(resume=run / "checkpoint.npz").status == "completed"
    reference = tiny_trainer(tmp_path / "ref6", 6, checkpoint_every=0)
    reference.fit()
    for key, value in reference.model.state_dict().items():
        np.testing.assert_array_equal(resumed.model.state_dict()[key], value, err_msg=key)


# -------------------------------------------------------------------------------------------------------------
# 3. SIGTERM and SIGINT during `nflow sample` and `nflow eval`
# -------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """A tiny toy model trained by `nflow train` (5 steps), for the commands below to read."""
    run = tmp_path_factory.mktemp("toy") / "run"
    result = subprocess.run(nflow_cli("train", "--steps", 5, "--hidden", 8, "--couplings", 2, "--no-progress",
                                      "--out", run), env=ENV, capture_output=True, text=True, timeout=CHILD_TIMEOUT)
    assert result.returncode == 0, result.stderr
    return run


def _default_sigint():
    # A shell's background job inherits SIGINT ignored; a user's terminal delivers it. Test the terminal's case.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _catches(pid, signum):
    """Whether process ``pid`` has a handler installed for ``signum`` (Linux /proc); None where unknown."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    except OSError:
        return None
    return None


def _cpu_seconds(pid):
    """CPU time used so far by process ``pid`` (Linux /proc); None where unknown."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


STARTUP_CPU_SECONDS = 1.2  # more than `python -m nflow` needs to import everything (about 0.5 s)


def interrupt(argv, signum, settle=0.3):
    """Run ``nflow argv``; once its work has begun, and ``settle`` seconds later, send ``signum``.
    Returns (exit status, stderr).

    The work has begun when ``main`` has installed its SIGTERM handler (after the imports) or, should it install
    none, when the process has used more CPU time than its start-up takes (so a missing handler is tested too,
    not mistaken for a slow start); on systems without /proc, after 2 s."""
    proc = subprocess.Popen(nflow_cli(*argv), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)
    try:
        start = time.monotonic()
        while True:
            assert proc.poll() is None, f"nflow {argv[0]} finished before the signal: {proc.communicate()[1]}"
            handler, cpu = _catches(proc.pid, signal.SIGTERM), _cpu_seconds(proc.pid)
            if handler or (cpu is not None and cpu > STARTUP_CPU_SECONDS) or (
                    handler is None and cpu is None and time.monotonic() - start > 2):
                break
            assert time.monotonic() - start < CHILD_TIMEOUT, f"nflow {argv[0]} did not start"
            time.sleep(0.01)
        time.sleep(settle)
        assert proc.poll() is None, f"nflow {argv[0]} finished before the signal: {proc.communicate()[1]}"
        proc.send_signal(signum)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"nflow {argv[0]} did not exit within 30 s of {signal.Signals(signum).name}")
    finally:
        stop(proc)
    return proc.returncode, err


def assert_complete_png(path):
    """Every chunk present with a correct CRC, IHDR first and IEND last: a whole PNG, not a prefix of one."""
    raw = path.read_bytes()
    assert raw[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    pos, types = 8, []
    while pos < len(raw):
        length = int.from_bytes(raw[pos:pos + 4], "big")
        chunk = raw[pos + 4:pos + 8 + length]
        crc = raw[pos + 8 + length:pos + 12 + length]
        assert len(chunk) == 4 + length and len(crc) == 4, f"{path} is truncated inside a {chunk[:4]} chunk"
        assert zlib.crc32(chunk) == int.from_bytes(crc, "big"), f"{path}: bad CRC in a {chunk[:4]} chunk"
        types.append(chunk[:4])
        pos += 12 + length
    assert types[0] == b"IHDR" and types[-1] == b"IEND", f"{path}: chunks {types}"


def assert_stopped_cleanly(status, err, signum):
    name = signal.Signals(signum).name
    assert status != 0, f"exit status 0 after {name}; stderr: {err!r}"
    assert "Traceback" not in err, f"a traceback after {name} (exit status {status}):\n{err}"
    lines = err.strip().splitlines()
    assert lines and lines[-1].startswith("nflow:"), f"no closing nflow message after {name} (status {status}): {err!r}"


SIGNALS = pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])


@SIGNALS
def test_a_signal_during_sample_stops_it_without_a_traceback_or_partial_png(toy_run, tmp_path, signum):
    """Fault: SIGTERM / SIGINT (as Ctrl-C sends it) 0.3 s into ``nflow sample -n 3000000`` (several seconds of
    work). Must hold: the process exits within 30 s with a nonzero status and no traceback, its last stderr line
    an ``nflow:`` message; the output directory holds no temporary file, and the PNG is either absent or
    complete (every chunk's CRC right, IEND last)."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    status, err = interrupt(["sample", toy_run, "-n", 3_000_000, "-o", out_dir / "s.png"], signum)
    assert_stopped_cleanly(status, err, signum)
    left = sorted(os.listdir(out_dir))
    assert left in ([], ["s.png"]), f"left behind in the output directory: {left}"
    if left:
        assert_complete_png(out_dir / "s.png")


@SIGNALS
def test_a_signal_during_eval_stops_it_without_a_traceback_or_stray_files(toy_run, signum):
    """Fault: SIGTERM / SIGINT 0.3 s into ``nflow eval --batch-size 2`` (10,000 toy test points, seconds of
    work). Must hold: the process exits within 30 s with a nonzero status and no traceback, its last stderr line
    an ``nflow:`` message; the run directory is exactly as before (eval writes nothing, no temporary file)."""
    before = sorted(os.listdir(toy_run))
    status, err = interrupt(["eval", toy_run, "--batch-size", 2], signum)
    assert_stopped_cleanly(status, err, signum)
    assert sorted(os.listdir(toy_run)) == before


def test_a_run_removes_the_half_written_checkpoints_a_killed_run_left():
    """Fault: temporary files of an atomic checkpoint write whose process was SIGKILLed (no cleanup could run),
    planted in the run directory, beside another file that merely looks alike. Must hold: the next run in that
    directory removes exactly the checkpoint's temporaries; the other file stays."""
    with tempfile.TemporaryDirectory() as tmp:
        run = os.path.join(tmp, "run")
        os.makedirs(run)
        stale = [os.path.join(run, ".checkpoint.npz.k3v9x1.tmp"), os.path.join(run, ".checkpoint.npz.a0.tmp")]
        keep = os.path.join(run, ".log.jsonl.q1.tmp")
        for path in stale + [keep]:
            with open(path, "wb") as f:
                f.write(b"PK\x03\x04 half a zip")
        tiny_trainer(run, 2, checkpoint_every=0).fit()
        assert not any(os.path.exists(p) for p in stale)
        assert os.path.exists(keep)
        assert load_checkpoint(os.path.join(run, "checkpoint.npz")).step == 2
