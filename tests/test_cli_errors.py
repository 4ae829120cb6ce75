"""Every failure a user can cause through the command line ends in one line, ``nflow: error: ...``, with exit
status 2 (usage: checked before any work) or 1 (a failure during the work), never a traceback (issue 16).

Each command runs in-process through ``nflow.cli.main``: a traceback there is an exception that escapes ``main``
(argparse's and ``fail``'s exits are ``SystemExit``). A fuzz test draws flag combinations and values, valid and
not, and holds every one to that rule.
"""
import os
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from nflow.checkpoint import load_checkpoint, save_checkpoint
from nflow.cli import main
from nflow.data.mnist import MNISTError
from cli_helpers import run

USAGE, FAILURE = 2, 1
TINY = ["--hidden", "8", "--couplings", "2", "--batch-size", "32", "--no-progress"]
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte")


def one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("nflow"), err
    assert "Traceback" not in "\n".join(err)
    return err[-1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run directory with a checkpoint of a tiny RealNVP trained 3 steps on the moons density."""
    out = tmp_path_factory.mktemp("cli-errors") / "run"
    assert run("train", "--steps", 3, "--out", out, *TINY) == 0
    return out


def _damaged_checkpoint(trained, path, change):
    ck = load_checkpoint(trained / "checkpoint.npz")
    state = {k: v.copy() for k, v in ck.model_state.items()}
    change(state)
    save_checkpoint(path, state, ck.optimizer_state, ck.step, ck.rng_state, ck.config, ck.extra,
                    require_finite=False)
    return path


# ------------------------------------------------------------------------------------------------ data
def test_damaged_data_files_are_one_line_and_exit_1(tmp_path, capsys):
    # four files of random bytes: each fails its checksum; the MNISTError is printed, not raised
    data = tmp_path / "data"
    data.mkdir()
    for name in MNIST_FILES:
        (data / name).write_bytes(np.random.default_rng(0).bytes(100))
    assert run("train", "--data", "mnist", "--data-dir", data, "--steps", 1, "--out", tmp_path / "r") == FAILURE
    line = one_error_line(capsys)
    assert line.startswith("nflow: error:") and "checksum" in line and "train-images" in line


def test_debug_lets_the_traceback_through(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for name in MNIST_FILES:
        (data / name).write_bytes(b"not an IDX file")
    with pytest.raises(MNISTError):
        main(["--debug", "train", "--data", "mnist", "--data-dir", str(data), "--steps", "1",
              "--out", str(tmp_path / "r")])


# ------------------------------------------------------------------------------------------------ output paths
def test_an_out_that_is_a_file_is_refused_before_training(tmp_path, capsys):
    (tmp_path / "afile").write_text("")
    assert run("train", "--steps", 1, "--out", tmp_path / "afile", *TINY) == USAGE
    assert "is a file, not a directory" in one_error_line(capsys)
    assert (tmp_path / "afile").read_text() == ""


@pytest.mark.parametrize("command", ["sample", "interpolate"])
def test_an_output_into_a_missing_directory_or_onto_a_directory_is_refused(trained, tmp_path, capsys, command):
    assert run(command, trained, "-o", tmp_path / "missing" / "x.png") == USAGE
    assert "does not exist" in one_error_line(capsys)
    assert run(command, trained, "-o", tmp_path) == USAGE
    assert "is a directory" in one_error_line(capsys)
    assert not (tmp_path / "missing").exists()


def _unwritable_directory(tmp_path):
    """A directory this process cannot create files in: a read-only one, or (as root, whom permissions do not
    stop) a path in /sys, which the kernel keeps read-only."""
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        return ro / "run"
    if os.path.isdir("/sys") and not os.access("/sys/nflow-test", os.F_OK):
        return "/sys/nflow-test-run"
    pytest.skip("no read-only directory to try as root")


def test_a_read_only_run_directory_is_refused_before_any_training(tmp_path, capsys):
    out = _unwritable_directory(tmp_path)
    assert run("train", "--steps", 1, "--out", out, *TINY) == USAGE
    line = one_error_line(capsys)
    assert "cannot be written" in line and str(out) in line
    assert "training" not in capsys.readouterr().err  # refused before the run started


# ------------------------------------------------------------------------------------------------ --resume
def test_flags_that_contradict_the_checkpoint_are_refused_naming_both_values(trained, capsys):
    ckpt = trained / "checkpoint.npz"
    assert run("train", "--resume", ckpt, "--hidden", 16, "--lr", 0.5, "--steps", 5) == USAGE
    line = one_error_line(capsys)
    assert "--hidden 16 (the checkpoint has 8)" in line and "--lr 0.5 (the checkpoint has" in line
    for flags in (["--data", "rings"], ["--seed", 7], ["--reversible"], ["--epochs", 2], ["--model", "nice"]):
        assert run("train", "--resume", ckpt, *flags) == USAGE, flags
        assert flags[0] in one_error_line(capsys)
    assert load_checkpoint(ckpt).step == 3  # nothing ran


def test_flags_that_agree_with_the_checkpoint_or_may_change_are_accepted(trained, tmp_path):
    out = tmp_path / "continued"
    assert run("train", "--resume", trained / "checkpoint.npz", "--hidden", 8, "--data", "moons", "--seed", 0,
               "--steps", 5, "--out", out, "--no-progress") == 0
    assert load_checkpoint(out / "checkpoint.npz").step == 5


# ------------------------------------------------------------------------------------------------ checkpoint values
@pytest.mark.parametrize("command", ["eval", "sample", "resume"])
def test_a_checkpoint_with_a_nan_weight_is_refused_naming_the_file_and_the_entry(trained, tmp_path, capsys,
                                                                                   command):
    first_float = {}

    def poison(state):
        name = next(k for k in sorted(state) if state[k].dtype.kind == "f" and state[k].size)
        state[name].flat[0] = np.nan
        first_float["name"] = name

    bad = _damaged_checkpoint(trained, tmp_path / "nan.npz", poison)
    argv = {"eval": ["eval", bad], "sample": ["sample", bad, "-o", tmp_path / "s.png"],
            "resume": ["train", "--resume", bad, "--steps", 5, "--out", tmp_path / "r", "--no-progress"]}[command]
    assert run(*argv) == FAILURE
    line = one_error_line(capsys)
    assert str(bad) in line and first_float["name"] in line and "NaN" in line
    assert not (tmp_path / "s.png").exists()


def test_a_checkpoint_without_a_run_configuration_is_refused(trained, tmp_path, capsys):
    ck = load_checkpoint(trained / "checkpoint.npz")
    save_checkpoint(tmp_path / "other.npz", ck.model_state, ck.optimizer_state, ck.step, ck.rng_state,
                    {"something": "else"}, ck.extra)
    assert run("sample", tmp_path / "other.npz", "-o", tmp_path / "s.png") == USAGE
    assert "no nflow run configuration" in one_error_line(capsys)


# ------------------------------------------------------------------------------------------------ fuzz
# Each flag's values: (valid, invalid). A drawn value is valid four times in five, so that most command lines get
# past argparse and into the work (a run, an evaluation), where the harder failures are.
INTS = (["1", "2", "3"], ["0", "-1", "2.5", "x", ""])
FLOATS = (["0.001", "0.5", "1"], ["0", "-1", "nan", "inf", "1e400", "x"])
TRAIN_FLAGS = {
    "--model": (["realnvp", "nice", "glow"], ["maf"]), "--data": (["moons", "rings", "mnist"], ["cifar"]),
    "--steps": INTS, "--epochs": (["1"], ["0", "-1", "x"]), "--minutes": FLOATS, "--batch-size": INTS,
    "--lr": FLOATS, "--warmup": INTS, "--max-grad-norm": FLOATS, "--backend": (["numpy", "numba"], ["gpu"]),
    "--seed": INTS, "--limit": (["100", "5"], ["0", "x"]), "--checkpoint-every": INTS, "--sample-every": INTS,
    "--eval-every": INTS, "--image-size": INTS,
    "--levels": INTS, "--flow-steps": INTS, "--hidden": INTS, "--couplings": INTS, "--depth": INTS,
    "--scales": INTS, "--coupling": (["affine", "additive"], ["cubic"]),
}
SWITCHES = ["--force", "--reversible", "--no-lu", "--no-progress", "--grey"]
CHECKPOINT_COMMAND_FLAGS = {
    "eval": {"--limit": INTS, "--batch-size": INTS, "--backend": (["numpy"], ["gpu"])},
    "sample": {"-n": INTS, "--temperature": (["0", "0.5", "1"], ["-1", "nan", "inf", "x"]), "--seed": INTS,
               "--backend": (["numpy"], ["x"])},
    "interpolate": {"--pairs": INTS, "--points": INTS, "--seed": INTS},
}
# Paths, relative to the fuzz directory: a checkpoint, a directory, and three kinds of wrong (weighted 2:1).
CHECKPOINTS = ["ckpt", "ckpt", "ckpt", "outdir", "missing/deeper", "afile", ""]
DIRECTORIES = ["outdir", "outdir", "", "", "run", "afile", "missing/deeper"]


def _value(draw, pools):
    valid, invalid = pools
    return draw(st.sampled_from(valid if draw(st.integers(0, 4)) else invalid))


@st.composite
def command_lines(draw):
    command = draw(st.sampled_from(["train", "eval", "sample", "interpolate"]))
    argv = [command]
    if command == "train":
        flags = draw(st.lists(st.sampled_from(sorted(TRAIN_FLAGS)), unique=True, max_size=4))
        for flag in flags:
            argv += [flag, _value(draw, TRAIN_FLAGS[flag])]
        argv += draw(st.lists(st.sampled_from(SWITCHES), unique=True, max_size=2))
        if draw(st.booleans()):
            argv += ["--out", os.path.join(draw(st.sampled_from(DIRECTORIES)), draw(st.sampled_from("abc")))]
        if draw(st.integers(0, 3)) == 0:
            argv += ["--resume", draw(st.sampled_from(CHECKPOINTS))]
        if "--steps" not in flags and "--epochs" not in flags:
            argv += ["--steps", "2"]           # a training run in the fuzz is a few steps, never minutes
        if "--limit" not in flags:
            argv += ["--limit", "300"]         # and an epoch is a few batches
        argv += ["--data-dir", "damaged"]      # MNIST from damaged files: refused, never downloaded
    else:
        argv.append(draw(st.sampled_from(CHECKPOINTS)))
        flags = draw(st.lists(st.sampled_from(sorted(CHECKPOINT_COMMAND_FLAGS[command])), unique=True, max_size=3))
        for flag in flags:
            argv += [flag, _value(draw, CHECKPOINT_COMMAND_FLAGS[command][flag])]
        if command != "eval":
            argv += ["-o", os.path.join(draw(st.sampled_from(DIRECTORIES)), "out.png")]
    if draw(st.integers(0, 5)) == 0:
        argv.insert(draw(st.integers(1, len(argv))), draw(st.sampled_from(["--bogus", "-z", "--steps"])))
    return argv


@pytest.fixture(scope="module")
def fuzz_dir(trained):
    root = tempfile.mkdtemp(prefix="nflow-fuzz-")
    os.symlink(trained / "checkpoint.npz", os.path.join(root, "ckpt"))
    os.mkdir(os.path.join(root, "damaged"))
    for name in MNIST_FILES:
        with open(os.path.join(root, "damaged", name), "wb") as f:
            f.write(b"\x00\x00\x08\x03 damaged")
    open(os.path.join(root, "afile"), "w").close()
    os.mkdir(os.path.join(root, "outdir"))
    return root


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
          deadline=None)
@given(argv=command_lines())
# whatever the draw, these lines reach the work itself: a run, an evaluation, sampling, a refused interpolation
@example(argv=["train", "--hidden", "2", "--steps", "2", "--limit", "300", "--out", "outdir/e"])
@example(argv=["train", "--resume", "ckpt", "--steps", "4", "--out", "outdir/r", "--no-progress"])
@example(argv=["eval", "ckpt", "--limit", "100"])
@example(argv=["sample", "ckpt", "-n", "3", "--temperature", "0", "-o", "outdir/s.png"])
@example(argv=["interpolate", "ckpt", "-o", "outdir/i.png"])
def test_fuzzed_command_lines_exit_0_1_or_2_and_never_raise(fuzz_dir, monkeypatch, argv):
    monkeypatch.chdir(fuzz_dir)
    monkeypatch.delenv("NFLOW_DATA", raising=False)
    status = run(*argv)
    assert status in (0, USAGE, FAILURE), (argv, status)


# ------------------------------------------------------------------------------------------------ memory
ADDRESS_SPACE_LIMIT = 4 << 30   # bytes: enough to import nflow and Numba, far too little for the model below


def test_a_model_too_large_for_memory_is_one_line_and_exit_1(tmp_path):
    # hidden 200,000: one 200,000² weight is 298 GiB; the child's address space is capped so that the allocation
    # fails at once on any machine (without the cap, an overcommitting kernel could accept it and then kill us)
    import resource
    import subprocess
    import sys

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))

    done = subprocess.run([sys.executable, "-m", "nflow", "train", "--hidden", "200000", "--steps", "1",
                           "--out", str(tmp_path / "big"), "--no-progress"], preexec_fn=cap, capture_output=True,
                          text=True, timeout=120,
                          # OpenBLAS reserves address space per thread: one thread keeps the cap independent of the
                          # machine's core count
                          env=dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
                                   NUMBA_NUM_THREADS="1"))
    assert done.returncode == FAILURE, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("nflow: error: out of memory")
