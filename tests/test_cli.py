"""The command line, end to end, on tiny configurations: toy data always, a slice of real MNIST when
NFLOW_DATA points at it. Each command runs in-process through ``nflow.cli.main``."""
import json
import os
import zlib

import numpy as np
import pytest

from nflow.checkpoint import load_checkpoint
from nflow.cli import main
from nflow.train.config import default_settings
from cli_helpers import PNG_SIGNATURE

needs_mnist = pytest.mark.skipif(not os.environ.get("NFLOW_DATA"), reason="NFLOW_DATA (real MNIST) not set")


def _png_size(path):
    with open(path, "rb") as f:
        raw = f.read()
    assert raw[:8] == PNG_SIGNATURE
    assert zlib.crc32(raw[12:29]) == int.from_bytes(raw[29:33], "big")  # IHDR's CRC
    return int.from_bytes(raw[16:20], "big"), int.from_bytes(raw[20:24], "big")


def _run(*argv):
    return main([str(a) for a in argv])


def test_train_eval_sample_on_a_toy_density(tmp_path, capsys):
    out = tmp_path / "run"
    assert _run("train", "--steps", 40, "--batch-size", 64, "--hidden", 16, "--couplings", 4,
                "--out", out, "--no-progress", "--checkpoint-every", 20) == 0
    for name in ("checkpoint.npz", "log.jsonl", "curve.png", "density.png"):
        assert (out / name).exists(), name
    with open(out / "log.jsonl") as f:
        records = [json.loads(line) for line in f]
    assert [r["step"] for r in records] == list(range(1, 41))
    assert set(records[0]) >= {"loss", "bpd", "grad_norm", "lr", "seconds"}
    # learning happened: the last ten steps' loss is below the first ten's
    assert np.mean([r["loss"] for r in records[-10:]]) < np.mean([r["loss"] for r in records[:10]])
    w, h = _png_size(out / "density.png")
    assert w > h  # data and learned density side by side

    capsys.readouterr()
    assert _run("eval", out) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("realnvp on moons, test split (10000 examples), checkpoint at step 40")
    nll_row = next(line for line in table if line.startswith("NLL"))
    nll, se = float(nll_row.split()[1]), float(nll_row.split("±")[1].split()[0])
    assert np.isfinite(nll) and nll < 3.0  # the standard Gaussian's NLL of standardised data is ≈ 2.84
    assert 0 < se < 0.1                     # 10,000 test points: the mean's standard error is about σ/100
    assert any(line.startswith("bits/dim") and "±" in line for line in table)
    assert _run("eval", out, "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["nll_nats"] == pytest.approx(nll, abs=5e-5) and result["split"] == "test"
    assert result["bits_per_dim"] == pytest.approx(result["nll_nats"] / (2 * np.log(2)), rel=1e-12)  # D = 2

    assert _run("sample", out / "checkpoint.npz", "-n", 500, "--temperature", 0.5, "-o", tmp_path / "s.png") == 0
    assert _png_size(tmp_path / "s.png")[0] > 0


def test_resume_continues_to_the_same_parameters_as_an_uninterrupted_run(tmp_path):
    common = ["--hidden", 8, "--couplings", 2, "--batch-size", 32, "--no-progress", "--seed", 3]
    assert _run("train", "--steps", 12, "--out", tmp_path / "full", *common) == 0
    assert _run("train", "--steps", 5, "--out", tmp_path / "half", *common) == 0
    assert _run("train", "--resume", tmp_path / "half" / "checkpoint.npz", "--steps", 12, "--no-progress") == 0
    full = load_checkpoint(tmp_path / "full" / "checkpoint.npz")
    resumed = load_checkpoint(tmp_path / "half" / "checkpoint.npz")
    assert resumed.step == full.step == 12
    for name, value in full.model_state.items():
        np.testing.assert_array_equal(resumed.model_state[name], value, err_msg=name)


def test_a_time_limit_stops_early_with_a_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    assert _run("train", "--steps", 100000, "--minutes", 0.001, "--hidden", 8, "--couplings", 2, "--out", out,
                "--no-progress") == 0
    assert "time limit" in capsys.readouterr().err
    assert 1 <= load_checkpoint(out / "checkpoint.npz").step < 100000


def test_a_non_empty_run_directory_is_not_overwritten_without_force(tmp_path, capsys):
    out = tmp_path / "run"
    assert _run("train", "--steps", 2, "--hidden", 8, "--couplings", 2, "--out", out, "--no-progress") == 0
    with pytest.raises(SystemExit) as e:
        _run("train", "--steps", 2, "--out", out, "--no-progress")
    assert e.value.code == 2 and "not empty" in capsys.readouterr().err


def test_training_defaults_per_kind_of_data(tmp_path):
    """What `nflow train` starts from; nflow.train.config is the one source of these numbers."""
    common = dict(lr=1e-3, max_grad_norm=100.0, betas=(0.9, 0.999), eps=1e-8, seed=0, max_consecutive_skips=20,
                  n_bins=None, progress=True, reversible=False, time_limit=None)
    assert default_settings("toy") == dict(common, steps=3000, batch_size=256, warmup_steps=100,
                                           checkpoint_every=500, sample_every=0, eval_every=500)
    assert default_settings("image") == dict(common, steps=1000, batch_size=64, warmup_steps=200,
                                             checkpoint_every=200, sample_every=200, eval_every=200)
    assert _run("train", "--epochs", 1, "--limit", 600, "--hidden", 8, "--couplings", 2, "--out", tmp_path,
                "--no-progress") == 0
    saved = load_checkpoint(tmp_path / "checkpoint.npz").config["train"]
    expected = dict(default_settings("toy"), steps=600 // 256, progress=False)
    assert saved == dict(expected, betas=list(expected["betas"]))


@pytest.mark.parametrize("argv, message", [
    (["train", "--steps", "0"], "positive integer"),
    (["train", "--lr", "-1"], "positive"),
    (["train", "--model", "vae"], "invalid choice"),
    (["train", "--data", "cifar"], "unknown data 'cifar'; expected a 2-D toy density"),
    (["train", "--steps", "3", "--epochs", "1"], "not allowed with"),
    (["sample", "x.npz", "--temperature", "-0.5"], "≥ 0"),
    (["train", "--model", "glow", "--data", "moons"], "needs images"),
])
def test_bad_flags_get_argparse_style_errors(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(argv + ["--out", str(tmp_path / "r")] if argv[0] == "train" else argv)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_a_corrupted_checkpoint_is_a_clear_error(tmp_path, capsys):
    out = tmp_path / "run"
    assert _run("train", "--steps", 2, "--hidden", 8, "--couplings", 2, "--out", out, "--no-progress") == 0
    path = out / "checkpoint.npz"
    raw = bytearray(path.read_bytes())
    path.write_bytes(bytes(raw[: len(raw) // 2]))  # truncated
    with pytest.raises(SystemExit) as e:
        _run("eval", path)
    assert e.value.code == 2
    assert str(path) in capsys.readouterr().err


@needs_mnist
def test_glow_on_a_slice_of_real_mnist(tmp_path, capsys):
    out = tmp_path / "glow"
    assert _run("train", "--data", "mnist", "--model", "glow", "--levels", 2, "--flow-steps", 1, "--hidden", 8,
                "--limit", 128, "--steps", 4, "--batch-size", 16, "--sample-every", 2, "--out", out,
                "--no-progress") == 0
    assert sorted(os.listdir(out / "samples")) == ["samples_0000002.png", "samples_0000004.png"]
    capsys.readouterr()
    assert _run("eval", out, "--limit", 64, "--json") == 0
    bpd = json.loads(capsys.readouterr().out)["bits_per_dim"]
    assert 0 < bpd < 8.5  # a barely trained flow: finite and below the uniform model's 8 bits + slack
    assert _run("interpolate", out, "--pairs", 2, "--points", 5, "-o", tmp_path / "i.png") == 0
    w, h = _png_size(tmp_path / "i.png")
    assert w > h  # 5 columns, 2 rows


@needs_mnist
def test_nice_and_realnvp_train_on_mnist_and_interpolate_refuses_toy_models(tmp_path, capsys):
    for model, arch in (("nice", ["--hidden", 16, "--depth", 1]), ("realnvp", ["--hidden", 4, "--scales", 2])):
        assert _run("train", "--data", "mnist", "--model", model, *arch, "--limit", 64, "--steps", 2,
                    "--batch-size", 16, "--out", tmp_path / model, "--no-progress", "--sample-every", 0) == 0
    assert _run("train", "--steps", 1, "--hidden", 8, "--couplings", 2, "--out", tmp_path / "toy",
                "--no-progress") == 0
    with pytest.raises(SystemExit):
        _run("interpolate", tmp_path / "toy")
    assert "needs an image model" in capsys.readouterr().err
