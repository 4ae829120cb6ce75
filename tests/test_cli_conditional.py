"""The class-conditional Glow and attribute strips from the command line (issue 13): `nflow train --num-classes`,
`sample --label`, `eval` with predict's accuracy, `manipulate`, and the refusals, on a small generated IDX set
(three classes of 8×8 pictures: each class brightens its own band of rows, so the classes differ). Models are a
few channels wide and train a few steps: the point is that labels reach the model and back out."""
import json
import zlib

import numpy as np
import pytest

from nflow.checkpoint import load_checkpoint, save_checkpoint
from cli_helpers import PNG_SIGNATURE, run

USAGE = 2
K = 3
TINY = ["--model", "glow", "--levels", "2", "--flow-steps", "1", "--hidden", "8"]
STEPS = ["--steps", "4", "--batch-size", "8", "--no-progress", "--sample-every", "0", "--eval-every", "0"]


def png_size(path):
    raw = path.read_bytes()
    assert raw[:8] == PNG_SIGNATURE and zlib.crc32(raw[12:29]) == int.from_bytes(raw[29:33], "big")
    return int.from_bytes(raw[16:20], "big"), int.from_bytes(raw[20:24], "big")


def write_idx(directory, split, images, labels):
    """The IDX format by hand: magic (0, 0, 0x08 = uint8, ndim), big-endian int32 sizes, then the bytes."""
    prefix = "train" if split == "train" else "t10k"
    for part, array in (("images-idx3-ubyte", images), ("labels-idx1-ubyte", labels)):
        header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
        (directory / f"{prefix}-{part}").write_bytes(header + array.astype(np.uint8).tobytes())


def labelled_set(directory, n_train=48, n_test=30, num_classes=K, seed=0):
    rng = np.random.default_rng(seed)
    directory.mkdir()
    for split, n in (("train", n_train), ("test", n_test)):
        labels = np.arange(n) % num_classes
        images = rng.integers(0, 60, (n, 8, 8))
        for i, label in enumerate(labels):
            images[i, 2 * label:2 * label + 3] += 150 + rng.integers(0, 40)
        write_idx(directory, split, images, labels)
    return ["--data", "idx", "--data-dir", directory]


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cond")
    data = labelled_set(root / "data")
    out = root / "run"
    assert run("train", *data, *TINY, *STEPS, "--num-classes", K, "--class-weight", 0.5, "--out", out) == 0
    return out, data[-1], root


def test_train_stores_num_classes_and_logs_the_cross_entropy(conditional_run):
    out, _, _ = conditional_run
    ck = load_checkpoint(out / "checkpoint.npz")
    assert ck.config["run"]["model_args"]["num_classes"] == K
    assert ck.config["run"]["model_args"]["class_weight"] == 0.5
    assert "label_prior.embed.weight" in ck.model_state and "class_head.linear.weight" in ck.model_state
    with open(out / "log.jsonl") as f:
        records = [json.loads(line) for line in f]
    assert len(records) == 4 and all(np.isfinite(r["class_ce"]) for r in records)


def test_eval_reports_the_conditional_likelihood_and_the_accuracy_of_predict(conditional_run, capsys):
    out, data_dir, _ = conditional_run
    capsys.readouterr()
    assert run("eval", out, "--data-dir", data_dir, "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["conditional"] is True and result["n"] == 30
    assert np.isfinite(result["bits_per_dim"]) and 0.0 <= result["accuracy"] <= 1.0
    assert run("eval", out, "--data-dir", data_dir) == 0
    table = capsys.readouterr().out
    assert "log p(x | y) with the true labels" in table and "accuracy of predict" in table


def test_sample_draws_a_class_and_refuses_one_the_run_lacks(conditional_run, tmp_path, capsys):
    out, _, _ = conditional_run
    assert run("sample", out, "--label", 2, "-n", 4, "-o", tmp_path / "two.png") == 0
    assert png_size(tmp_path / "two.png")[0] > 0
    assert run("sample", out, "-n", 6, "-o", tmp_path / "all.png") == 0   # every class in turn, a column each
    assert png_size(tmp_path / "all.png")[0] == K * (8 + 2) + 2
    capsys.readouterr()
    assert run("sample", out, "--label", 3, "-o", tmp_path / "x.png") == USAGE
    assert "--label 3: the run has 3 classes, 0..2" in capsys.readouterr().err


@pytest.mark.parametrize("with_spec, without_spec", [("label:1", "label:0"), ("ink:top", "ink:bottom")])
def test_manipulate_writes_a_strip_of_rows_by_alphas(conditional_run, tmp_path, with_spec, without_spec, capsys):
    out, data_dir, _ = conditional_run
    strip = tmp_path / "strip.png"
    assert run("manipulate", out, "--data-dir", data_dir, "--with", with_spec, "--without", without_spec,
               "--rows", 2, "--alphas", -1, 0, 1, 2, "-o", strip) == 0
    assert f"2 images of {without_spec} moved along {with_spec} - {without_spec}" in capsys.readouterr().err
    width, height = png_size(strip)
    # make_grid: 4 columns and 2 rows of 8-pixel tiles with 2 pixels of padding, enlarged twice; a caption on top
    assert width == 2 * (4 * 10 + 2) and height > 2 * (2 * 10 + 2)


def test_refusals(conditional_run, tmp_path, capsys):
    out, data_dir, root = conditional_run
    data = ["--data", "idx", "--data-dir", data_dir]
    cases = [
        (["train", *data, *TINY, *STEPS, "--num-classes", 2, "--out", tmp_path / "a"],
         "--num-classes 2: the train split of idx has labels up to 2; give --num-classes 3 or more"),
        (["train", *data, "--model", "realnvp", "--scales", 2, "--hidden", 4, *STEPS, "--num-classes", 3,
          "--out", tmp_path / "b"], "realnvp takes no labels"),
        (["train", *data, *TINY, *STEPS, "--class-weight", 1, "--out", tmp_path / "c"], "give --num-classes K too"),
        (["train", *data, *TINY, *STEPS, "--label-prior", "position", "--out", tmp_path / "c2"],
         "--label-prior applies to a class-conditional Glow, trained on the labels: give --num-classes K too"),
        (["train", *data, *TINY, *STEPS, "--num-classes", 3, "--label-prior", "pixel", "--out", tmp_path / "c3"],
         "invalid choice: 'pixel'"),
        (["train", *data, *TINY, *STEPS, "--num-classes", 3, "--reversible", "--out", tmp_path / "d"],
         "--reversible does not take --num-classes"),
        (["train", *data, *TINY, *STEPS, "--num-classes", 1, "--out", tmp_path / "e"], "an integer ≥ 2"),
        (["manipulate", out, "--data-dir", data_dir, "--with", "label:7", "--without", "label:0", "-o",
          tmp_path / "m.png"], "label:7: no test image of idx has it"),
        (["manipulate", out, "--with", "ink:middle", "--without", "label:0"], "expected label:N"),
    ]
    for argv, message in cases:
        capsys.readouterr()
        assert run(*argv) == USAGE, argv
        assert message in capsys.readouterr().err, argv
    plain = tmp_path / "plain"
    assert run("train", *data, *TINY, *STEPS, "--steps", 1, "--out", plain) == 0
    capsys.readouterr()
    assert run("sample", plain, "--label", 1, "-o", tmp_path / "s.png") == USAGE
    err = capsys.readouterr().err
    assert "--label: the run of" in err and "is unconditional (trained without --num-classes)" in err
    assert run("manipulate", plain, "--data-dir", data_dir, "--with", "ink:top", "--without", "ink:bottom",
               "--rows", 1, "-o", tmp_path / "plain.png") == 0   # an unconditional run has attribute vectors too
    images = np.random.default_rng(0).integers(0, 256, (20, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "unlabelled.npz", images=images)
    capsys.readouterr()
    assert run("train", "--data", f"npz:{tmp_path / 'unlabelled.npz'}", *TINY, *STEPS, "--num-classes", 3,
               "--out", tmp_path / "f") == USAGE
    assert "has no labels; class-conditional training needs labelled data" in capsys.readouterr().err
    capsys.readouterr()
    assert run("train", "--resume", out / "checkpoint.npz", "--num-classes", 4, "--out", tmp_path / "g") == USAGE
    assert "--num-classes 4 (the checkpoint has 3)" in capsys.readouterr().err
    assert run("train", "--resume", out / "checkpoint.npz", "--label-prior", "position", "--out", tmp_path / "h") \
        == USAGE
    assert "--label-prior position (the checkpoint has channel)" in capsys.readouterr().err


def test_a_resumed_conditional_run_continues_exactly(tmp_path):
    data = labelled_set(tmp_path / "data")
    common = [*data, *TINY, "--batch-size", 8, "--no-progress", "--sample-every", 0, "--eval-every", 0,
              "--num-classes", K, "--class-weight", 0.5]
    assert run("train", *common, "--steps", 6, "--out", tmp_path / "full") == 0
    assert run("train", *common, "--steps", 3, "--out", tmp_path / "half") == 0
    assert run("train", "--resume", tmp_path / "half", "--steps", 6, "--no-progress", "--data-dir", data[-1]) == 0
    full = load_checkpoint(tmp_path / "full" / "checkpoint.npz").model_state
    resumed = load_checkpoint(tmp_path / "half" / "checkpoint.npz").model_state
    for name, value in full.items():
        np.testing.assert_array_equal(resumed[name], value, err_msg=name)


def test_label_prior_position_trains_evals_samples_and_resumes(conditional_run, tmp_path, capsys):
    """--label-prior position: the label map gives (m_y, s_y) per channel and position of the (8, 2, 2) top
    latent, 2·8·2·2 = 64 rows per class (the channel form has 16); eval and sample take the run as it is."""
    _, data_dir, _ = conditional_run
    data = ["--data", "idx", "--data-dir", data_dir]
    out = tmp_path / "position"
    assert run("train", *data, *TINY, *STEPS, "--num-classes", K, "--label-prior", "position", "--out", out) == 0
    ck = load_checkpoint(out / "checkpoint.npz")
    assert ck.config["run"]["model_args"]["label_prior"] == "position"
    weight = ck.model_state["label_prior.embed.weight"]
    assert weight.shape == (64, K) and np.abs(weight).max() > 0   # trained: the label map moved from zero
    capsys.readouterr()
    assert run("eval", out, "--data-dir", data_dir, "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["conditional"] is True and np.isfinite(result["bits_per_dim"]) and 0 <= result["accuracy"] <= 1
    assert run("sample", out, "--label", 1, "-n", 2, "-o", tmp_path / "one.png") == 0
    assert run("train", "--resume", out, "--steps", 6, "--label-prior", "position", "--no-progress",
               "--data-dir", data_dir) == 0
    assert load_checkpoint(out / "checkpoint.npz").step == 6
    capsys.readouterr()
    assert run("train", "--resume", out, "--steps", 8, "--label-prior", "channel", "--no-progress") == USAGE
    assert "--label-prior channel (the checkpoint has position)" in capsys.readouterr().err


def test_a_run_from_before_label_prior_resumes_as_the_channel_form(conditional_run, tmp_path, capsys):
    """A checkpoint whose model_args lack label_prior (written before the flag existed) has the channel form:
    --label-prior channel agrees with it, position is refused."""
    out, data_dir, _ = conditional_run
    ck = load_checkpoint(out / "checkpoint.npz")
    del ck.config["run"]["model_args"]["label_prior"]
    (tmp_path / "old").mkdir()
    old = tmp_path / "old" / "checkpoint.npz"
    save_checkpoint(old, ck.model_state, ck.optimizer_state, ck.step, ck.rng_state, ck.config, ck.extra)
    capsys.readouterr()
    assert run("train", "--resume", old, "--label-prior", "position", "--no-progress") == USAGE
    assert "--label-prior position (the checkpoint has channel)" in capsys.readouterr().err
    assert run("train", "--resume", old, "--steps", ck.step + 1, "--label-prior", "channel", "--no-progress",
               "--data-dir", data_dir) == 0
    assert load_checkpoint(old).step == ck.step + 1
