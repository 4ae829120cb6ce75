"""Training on your own data from the command line (issue 14): every image source of ``nflow.data.load_images``
(a folder of pictures, an .npz, an IDX set, CIFAR-10's binary files) through train, eval, sample and interpolate,
grey and colour, on small generated files; and the refusals that name the file or the sizes.

Each command runs in-process through ``nflow.cli.main``; models are a few channels wide and train two steps: the
point is that the data reaches the model and back out in the right shape, not what it learns.
"""
import json
import os

import numpy as np
import pytest
from PIL import Image

from nflow.checkpoint import load_checkpoint
from cli_helpers import PNG_SIGNATURE, run

USAGE, FAILURE = 2, 1
PNG_COLOUR_TYPE = {0: "grey", 2: "rgb"}   # IHDR byte 25
TINY = {"glow": ["--levels", "2", "--flow-steps", "1", "--hidden", "4"],
        "realnvp": ["--scales", "2", "--hidden", "4"]}
STEPS = ["--steps", "2", "--batch-size", "8", "--no-progress", "--sample-every", "0"]
CIFAR_RECORD = 1 + 3 * 32 * 32   # a label byte, then 1024 red, 1024 green, 1024 blue bytes (row-major 32×32)


def png_kind(path):
    with open(path, "rb") as f:
        raw = f.read()
    assert raw[:8] == PNG_SIGNATURE
    return PNG_COLOUR_TYPE[raw[25]]


def write_folder(root, classes=("cats", "dogs"), per_class=12, size=(8, 8), mode="RGB", seed=0):
    """``per_class`` random pictures per class folder; 12 by default, so that two classes hold out (10 %) the two
    test pictures one interpolation needs and one class fills a batch of 8."""
    rng = np.random.default_rng(seed)
    for name in classes:
        os.makedirs(root / name, exist_ok=True)
        for i in range(per_class):
            shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(root / name / f"{i}.png")


def write_idx(directory, split, images, labels):
    """The IDX format by hand: magic (0, 0, 0x08 = uint8, ndim), big-endian int32 sizes, then the bytes."""
    prefix = "train" if split == "train" else "t10k"
    for part, array in (("images-idx3-ubyte", images), ("labels-idx1-ubyte", labels)):
        header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
        (directory / f"{prefix}-{part}").write_bytes(header + array.astype(np.uint8).tobytes())


def write_cifar(directory, n_per_file=4, seed=0):
    rng = np.random.default_rng(seed)
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        records = rng.integers(0, 256, (n_per_file, CIFAR_RECORD), dtype=np.uint8)
        records[:, 0] %= 10
        (directory / name).write_bytes(records.tobytes())


def train_eval_sample_interpolate(tmp_path, data, model, extra=(), channels=3, capsys=None):
    out = tmp_path / f"{model}-run"
    assert run("train", "--data", data, "--model", model, *TINY[model], *STEPS, *extra, "--out", out) == 0
    ck = load_checkpoint(out / "checkpoint.npz")
    assert ck.config["run"]["input_shape"][0] == channels
    if capsys is not None:
        capsys.readouterr()
    assert run("eval", out, "--json", *([a for a in extra if a.startswith("--data-dir")] and
                                        ["--data-dir", extra[extra.index("--data-dir") + 1]])) == 0
    if capsys is not None:
        result = json.loads(capsys.readouterr().out)
        assert np.isfinite(result["bits_per_dim"]) and result["data"] == data
    assert run("sample", out, "-n", 4, "-o", tmp_path / "s.png") == 0
    assert png_kind(tmp_path / "s.png") == ("rgb" if channels == 3 else "grey")
    assert run("interpolate", out, "--pairs", 1, "--points", 3, "-o", tmp_path / "i.png",
               *(["--data-dir", extra[extra.index("--data-dir") + 1]] if "--data-dir" in extra else [])) == 0
    return out


# ------------------------------------------------------------------------------------------------ sources
@pytest.mark.parametrize("model", ["glow", "realnvp"])
def test_a_colour_npz_trains_evaluates_samples_and_interpolates(tmp_path, capsys, model):
    images = np.random.default_rng(1).integers(0, 256, (60, 8, 8, 3), dtype=np.uint8)   # channels last
    np.savez(tmp_path / "mine.npz", images=images)
    train_eval_sample_interpolate(tmp_path, f"npz:{tmp_path / 'mine.npz'}", model, capsys=capsys)


def test_a_folder_of_colour_pictures_in_classes(tmp_path, capsys):
    write_folder(tmp_path / "pics")
    train_eval_sample_interpolate(tmp_path, f"folder:{tmp_path / 'pics'}", "glow", capsys=capsys)


def test_a_folder_of_mixed_sizes_needs_an_image_size_and_trains_with_one(tmp_path, capsys):
    write_folder(tmp_path / "pics", classes=("a",), size=(8, 8))
    write_folder(tmp_path / "pics", classes=("b",), size=(12, 10), seed=1)   # 24 pictures: 2 held out
    assert run("train", "--data", f"folder:{tmp_path / 'pics'}", *TINY["glow"], *STEPS,
               "--out", tmp_path / "r") == FAILURE
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("nflow: error:") and "8×8" in line.replace("x", "×") and ".png" in line
    train_eval_sample_interpolate(tmp_path, f"folder:{tmp_path / 'pics'}", "glow", extra=("--image-size", "4"))


def test_a_grey_idx_set_that_is_not_mnist(tmp_path, capsys):
    rng = np.random.default_rng(2)
    data = tmp_path / "fashion"
    data.mkdir()
    write_idx(data, "train", rng.integers(0, 256, (40, 8, 8)), rng.integers(0, 10, 40))
    write_idx(data, "test", rng.integers(0, 256, (12, 8, 8)), rng.integers(0, 10, 12))
    train_eval_sample_interpolate(tmp_path, "idx", "realnvp", extra=("--data-dir", str(data)), channels=1,
                                  capsys=capsys)


def test_cifar10_binary_files_and_grey_conversion(tmp_path, capsys):
    data = tmp_path / "cifar"
    data.mkdir()
    write_cifar(data)
    train_eval_sample_interpolate(tmp_path, "cifar10", "glow", extra=("--data-dir", str(data)), capsys=capsys)
    out = tmp_path / "grey"
    assert run("train", "--data", "cifar10", "--data-dir", data, "--grey", *TINY["glow"], *STEPS, "--out", out) == 0
    assert load_checkpoint(out / "checkpoint.npz").config["run"]["input_shape"] == [1, 32, 32]


# ------------------------------------------------------------------------------------------------ refusals
def test_images_the_model_cannot_squeeze_are_refused_with_the_sizes_and_a_hint(tmp_path, capsys):
    np.save(tmp_path / "odd.npy", np.zeros((20, 1, 6, 6), dtype=np.uint8))
    assert run("train", "--data", f"npy:{tmp_path / 'odd.npy'}", "--model", "glow", "--levels", "2",
               *STEPS, "--out", tmp_path / "r") == USAGE
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "(1, 6, 6)" in line and "--image-size" in line


def test_a_data_set_smaller_than_one_batch_is_refused(tmp_path, capsys):
    np.save(tmp_path / "few.npy", np.zeros((5, 1, 4, 4), dtype=np.uint8))
    assert run("train", "--data", f"npy:{tmp_path / 'few.npy'}", "--model", "realnvp", "--steps", "1",
               "--batch-size", "64", "--out", tmp_path / "r") == USAGE
    assert "a batch of 64 examples" in capsys.readouterr().err


def test_an_unreadable_picture_is_named(tmp_path, capsys):
    write_folder(tmp_path / "pics", classes=("a",))
    (tmp_path / "pics" / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    assert run("train", "--data", f"folder:{tmp_path / 'pics'}", *STEPS, "--out", tmp_path / "r") == FAILURE
    assert "broken.png" in capsys.readouterr().err


def test_an_unknown_data_spec_lists_the_accepted_forms(capsys):
    assert run("train", "--data", "cifar100") == USAGE
    err = capsys.readouterr().err
    assert "npz:PATH" in err and "folder:DIR" in err and "moons" in err


def test_resume_refuses_another_image_size(tmp_path, capsys):
    write_folder(tmp_path / "pics", classes=("a",), size=(8, 8))
    out = tmp_path / "r"
    assert run("train", "--data", f"folder:{tmp_path / 'pics'}", "--image-size", 4, *TINY["glow"], *STEPS,
               "--out", out) == 0
    assert run("train", "--resume", out / "checkpoint.npz", "--image-size", 8, "--steps", 3) == USAGE
    assert "--image-size 8 (the checkpoint has 4)" in capsys.readouterr().err


def test_interpolate_refuses_more_pairs_than_the_test_split_holds(tmp_path, capsys):
    np.save(tmp_path / "small.npy", np.random.default_rng(3).integers(0, 256, (20, 1, 4, 4), dtype=np.uint8))
    out = tmp_path / "r"
    assert run("train", "--data", f"npy:{tmp_path / 'small.npy'}", "--model", "realnvp", *TINY["realnvp"], *STEPS,
               "--out", out) == 0   # 20 images: 2 held out for the test split
    assert run("interpolate", out, "--pairs", 2, "-o", tmp_path / "i.png") == USAGE
    assert "--pairs 2 needs 4 test images" in capsys.readouterr().err
    assert not (tmp_path / "i.png").exists()
