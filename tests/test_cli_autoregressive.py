"""`nflow train --model maf|iaf` end to end on tiny configurations: a 2-D toy density, a small grey .npz image
set, and a slice of real MNIST when NFLOW_DATA points at it; `eval` and `sample` on their checkpoints."""
import json
import os

import numpy as np
import pytest

from nflow.checkpoint import load_checkpoint
from cli_helpers import PNG_SIGNATURE, run

needs_mnist = pytest.mark.skipif(not os.environ.get("NFLOW_DATA"), reason="NFLOW_DATA (real MNIST) not set")
QUIET = ["--no-progress", "--sample-every", "0"]


def eval_json(out, capsys, *extra):
    capsys.readouterr()
    assert run("eval", out, "--json", *extra) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("model", ["maf", "iaf"])
def test_train_eval_sample_on_a_toy_density(tmp_path, capsys, model):
    out = tmp_path / model
    assert run("train", "--model", model, "--data", "8gaussians", "--layers", 2, "--hidden", 16, "--depth", 1,
               "--steps", 30, "--batch-size", 64, "--out", out, *QUIET) == 0
    for name in ("checkpoint.npz", "density.png"):
        assert (out / name).exists(), name
    run_config = load_checkpoint(out / "checkpoint.npz").config["run"]
    assert run_config["model"] == model
    assert run_config["model_args"] == dict(layers=2, hidden=16, depth=1)
    with open(out / "log.jsonl") as f:
        losses = [json.loads(line)["loss"] for line in f]
    assert np.mean(losses[-10:]) < np.mean(losses[:10])     # it learns
    result = eval_json(out, capsys, "--limit", 500)
    assert np.isfinite(result["nll_nats"]) and result["nll_nats"] < 3.0   # N(0, I) on standardised data: ≈ 2.84
    assert run("sample", out, "-n", 50, "-o", tmp_path / "s.png") == 0
    assert (tmp_path / "s.png").read_bytes()[:8] == PNG_SIGNATURE


@pytest.mark.parametrize("model", ["maf", "iaf"])
def test_train_eval_sample_on_small_grey_images(tmp_path, capsys, model):
    images = np.random.default_rng(0).integers(0, 256, (40, 6, 6), dtype=np.uint8)
    np.savez(tmp_path / "tiny.npz", images=images)
    data, out = f"npz:{tmp_path / 'tiny.npz'}", tmp_path / model
    assert run("train", "--model", model, "--data", data, "--layers", 2, "--hidden", 8, "--steps", 2,
               "--batch-size", 8, "--out", out, *QUIET) == 0
    config = load_checkpoint(out / "checkpoint.npz").config["run"]
    assert config["input_shape"] == [1, 6, 6]
    assert config["model_args"] == dict(layers=2, hidden=8, depth=1, batch_norm=True)
    result = eval_json(out, capsys)
    assert np.isfinite(result["bits_per_dim"]) and result["bits_per_dim"] > 0
    assert run("sample", out, "-n", 4, "--temperature", 0.7, "-o", tmp_path / "s.png") == 0
    assert (tmp_path / "s.png").read_bytes()[:8] == PNG_SIGNATURE


@pytest.mark.parametrize("model", ["maf", "iaf"])
def test_iaf_on_images_says_its_density_direction_is_slow(tmp_path, capsys, model):
    images = np.random.default_rng(0).integers(0, 256, (16, 9, 9), dtype=np.uint8)   # 81 dimensions
    np.savez(tmp_path / "small.npz", images=images)
    assert run("train", "--model", model, "--data", f"npz:{tmp_path / 'small.npz'}", "--layers", 1, "--hidden", 4,
               "--steps", 1, "--batch-size", 4, "--out", tmp_path / model, *QUIET) == 0
    said = "IAF computes log p(x) in 81 sequential passes per layer" in capsys.readouterr().err
    assert said == (model == "iaf")


def test_layers_is_an_maf_flag_only(tmp_path, capsys):
    assert run("train", "--model", "realnvp", "--layers", 3, "--steps", 1, "--out", tmp_path / "r", *QUIET) == 2
    assert "--layers does not apply to realnvp" in capsys.readouterr().err
    assert run("train", "--model", "maf", "--couplings", 3, "--steps", 1, "--out", tmp_path / "m", *QUIET) == 2
    err = capsys.readouterr().err
    assert "--couplings does not apply to maf" in err and "--layers" in err


@needs_mnist
def test_maf_on_a_slice_of_real_mnist(tmp_path, capsys):
    out = tmp_path / "maf"
    assert run("train", "--data", "mnist", "--model", "maf", "--layers", 1, "--hidden", 16, "--limit", 64,
               "--steps", 2, "--batch-size", 16, "--out", out, *QUIET) == 0
    bpd = eval_json(out, capsys, "--limit", 64)["bits_per_dim"]
    assert np.isfinite(bpd) and bpd > 0   # barely trained: a logit-space Gaussian on pixels, well above 8 bits
    assert run("sample", out, "-n", 2, "-o", tmp_path / "s.png") == 0
