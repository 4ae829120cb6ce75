"""Checkpoints: exact round trips, atomic writes, and a clear CheckpointError for every kind of damage."""
import json
import os
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nflow.atomic import atomic_write, atomic_write_bytes
from nflow.checkpoint import (FORMAT_VERSION, CheckpointError, NonFiniteStateError, load_checkpoint,
                              save_checkpoint)


def example_contents(seed=0):
    r = np.random.default_rng(seed)
    gen = np.random.default_rng(99)
    gen.random(5)  # a state that is not the initial one
    return dict(
        model_state={"flows.0.weight": r.normal(size=(3, 4)).astype(np.float32),
                     "flows.0.initialized": np.array(True),
                     "prior.log_scale": r.normal(size=(7,)).astype(np.float64)},
        optimizer_state={"step_count": np.array(12), "lr": np.array(1e-3),
                         "0.m": r.normal(size=(3, 4)).astype(np.float32)},
        step=12,
        rng_state={"data": gen.bit_generator.state},
        config={"train": {"lr": 0.001, "betas": [0.9, 0.999]}, "run": {"model": "glow", "levels": 3}},
        extra={"skipped_total": 2},
    ), gen


def test_round_trip_is_exact(tmp_path):
    contents, gen = example_contents()
    path = tmp_path / "ck.npz"
    save_checkpoint(path, **contents)
    ck = load_checkpoint(path)
    assert ck.step == 12 and ck.format_version == FORMAT_VERSION and ck.path == str(path)
    for mine, theirs in ((contents["model_state"], ck.model_state), (contents["optimizer_state"], ck.optimizer_state)):
        assert set(mine) == set(theirs)
        for k in mine:
            assert theirs[k].dtype == np.asarray(mine[k]).dtype and theirs[k].shape == np.asarray(mine[k]).shape
            np.testing.assert_array_equal(theirs[k], mine[k])
    assert ck.config == contents["config"] and ck.extra == contents["extra"]
    # The restored generator continues the original's stream.
    restored = np.random.default_rng()
    restored.bit_generator.state = ck.rng_state["data"]
    np.testing.assert_array_equal(restored.random(8), gen.random(8))


def test_the_file_is_a_plain_npz_that_loads_without_pickle(tmp_path):
    contents, _ = example_contents()
    save_checkpoint(tmp_path / "ck.npz", **contents)
    with np.load(tmp_path / "ck.npz", allow_pickle=False) as z:
        assert "model/flows.0.weight" in z.files and "optim/0.m" in z.files
        assert int(z["format_version"]) == FORMAT_VERSION
        assert json.loads(z["config"].tobytes().decode()) == contents["config"]


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_truncated_file_gives_a_checkpoint_error_naming_it(tmp_path, fraction):
    contents, _ = example_contents()
    path = tmp_path / "ck.npz"
    save_checkpoint(path, **contents)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


@settings(max_examples=60)
@given(position=st.floats(0.0, 1.0, exclude_max=True), xor=st.integers(1, 255))
def test_any_corrupted_byte_is_either_reported_or_harmless(tmp_path_factory, position, xor):
    directory = tmp_path_factory.mktemp("corrupt")
    contents, _ = example_contents()
    path = directory / "ck.npz"
    save_checkpoint(path, **contents)
    data = bytearray(path.read_bytes())
    data[int(position * len(data))] ^= xor
    path.write_bytes(bytes(data))
    try:
        ck = load_checkpoint(path)
    except CheckpointError as e:
        assert str(path) in str(e)
        return
    # Bytes the zip format does not read back (timestamps, "version made by") may change harmlessly;
    # anything that loads must then be exactly what was saved.
    assert ck.step == contents["step"] and ck.config == contents["config"]
    for k, v in contents["model_state"].items():
        np.testing.assert_array_equal(ck.model_state[k], v)
    for k, v in contents["optimizer_state"].items():
        np.testing.assert_array_equal(ck.optimizer_state[k], v)


def test_garbage_empty_and_missing_files_give_checkpoint_errors(tmp_path):
    (tmp_path / "garbage.npz").write_bytes(b"this is not a checkpoint at all" * 10)
    (tmp_path / "empty.npz").write_bytes(b"")
    for name in ("garbage.npz", "empty.npz", "missing.npz"):
        with pytest.raises(CheckpointError, match=name):
            load_checkpoint(tmp_path / name)


def test_an_npz_that_is_not_a_checkpoint_is_rejected(tmp_path):
    np.savez(tmp_path / "other.npz", weights=np.ones(3))
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(tmp_path / "other.npz")
    np.save(tmp_path / "single.npy", np.ones(3))
    with pytest.raises(CheckpointError, match="single.npy"):
        load_checkpoint(tmp_path / "single.npy")


@pytest.mark.parametrize("version,message", [
    (FORMAT_VERSION + 1, "newer"),
    # format 1 (nflow 0.1.0) kept each LU 1x1 convolution's unused 'lower_mask' buffer; this nflow does not read it
    (1, r"ck.npz: format version 1 is older .*lower_mask.*nflow release that"),
])
def test_another_format_version_is_refused(tmp_path, version, message):
    contents, _ = example_contents()
    path = tmp_path / "ck.npz"
    save_checkpoint(path, **contents)
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["format_version"] = np.array(version)
    np.savez(path, **arrays)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_writer_failing_midway_leaves_the_old_checkpoint_and_no_partial_file(tmp_path, monkeypatch):
    old, _ = example_contents(seed=0)
    path = tmp_path / "ck.npz"
    save_checkpoint(path, **old)
    before = path.read_bytes()

    def failing_savez(f, **arrays):
        f.write(b"PK\x03\x04 half a zip file")  # something is written, then the writer dies
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", failing_savez)
    new, _ = example_contents(seed=1)
    with pytest.raises(CheckpointError, match=r"could not be written \(disk full\); the previous checkpoint"):
        save_checkpoint(path, **dict(new, step=13))
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["ck.npz"]
    assert path.read_bytes() == before
    assert load_checkpoint(path).step == 12


def test_atomic_write_removes_its_temporary_file_on_any_exception(tmp_path):
    target = tmp_path / "file.bin"
    target.write_bytes(b"old")

    def write_then_interrupt(f):
        f.write(b"new but unfinished")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, write_then_interrupt)
    assert os.listdir(tmp_path) == ["file.bin"] and target.read_bytes() == b"old"
    atomic_write(target, lambda f: f.write(b"new"))
    assert os.listdir(tmp_path) == ["file.bin"] and target.read_bytes() == b"new"


def test_non_finite_state_is_refused_before_anything_is_written(tmp_path):
    contents, _ = example_contents()
    path = tmp_path / "ck.npz"
    save_checkpoint(path, **contents)
    before = path.read_bytes()
    bad = dict(contents["model_state"])
    bad["flows.0.weight"] = bad["flows.0.weight"].copy()
    bad["flows.0.weight"][1, 2] = np.nan
    with pytest.raises(NonFiniteStateError, match="flows.0.weight"):
        save_checkpoint(path, **dict(contents, model_state=bad))
    assert os.listdir(tmp_path) == ["ck.npz"] and path.read_bytes() == before


def test_unstorable_values_are_refused(tmp_path):
    contents, _ = example_contents()
    with pytest.raises(CheckpointError, match="dtype object"):
        save_checkpoint(tmp_path / "a.npz", **dict(contents, model_state={"w": np.array([{"a": 1}], dtype=object)}))
    with pytest.raises(CheckpointError, match="config"):
        save_checkpoint(tmp_path / "b.npz", **dict(contents, config={"lr": float("nan")}))
    with pytest.raises(CheckpointError, match="RNG"):
        save_checkpoint(tmp_path / "c.npz", **dict(contents, rng_state={"gen": object()}))
    assert os.listdir(tmp_path) == []


def test_zip_crc_is_what_catches_flipped_array_bytes(tmp_path):
    # A byte flipped inside an array's data leaves every header intact; only the CRC-32 can notice.
    contents, _ = example_contents()
    path = tmp_path / "ck.npz"
    save_checkpoint(path, **contents)
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("model/flows.0.weight.npy")
    data = bytearray(path.read_bytes())
    header_len = 30 + len(info.filename) + len(info.extra)  # local file header, then the member's bytes
    data[info.header_offset + header_len + info.file_size - 3] ^= 0x40  # inside the float data
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="CRC"):
        load_checkpoint(path)


def test_atomic_write_gives_new_files_the_umask_mode_and_keeps_a_replaced_files_mode(tmp_path):
    # mkstemp's temporary file is 0600; a checkpoint or a picture must not end up private by accident
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "new.bin", b"x")
        assert os.stat(tmp_path / "new.bin").st_mode & 0o777 == 0o644
        os.chmod(tmp_path / "new.bin", 0o640)
        atomic_write_bytes(tmp_path / "new.bin", b"y")
        assert os.stat(tmp_path / "new.bin").st_mode & 0o777 == 0o640
    finally:
        os.umask(old)
