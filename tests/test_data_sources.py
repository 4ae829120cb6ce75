"""Image data from one spec (nflow.data.sources): IDX folders, CIFAR-10's binary files, NumPy arrays and picture
folders, each on small files written here by hand; every refusal names the file and what was found. No network:
CIFAR-10's download is exercised from a file:// URL and with urlopen made to fail."""
import gzip
import hashlib
import io
import os
import struct
import tarfile
import urllib.error

import numpy as np
import pytest
from PIL import Image

from nflow.data import (IMAGE_SOURCES, DataError, DataNotFoundError, ImageSet, MNISTError, MNISTNotFoundError,
                        is_image_spec, load_images, parse_image_spec)
from nflow.data import cifar10 as cifar10_module
from nflow.data import folder as folder_module
from nflow.data import sources as sources_module
from nflow.errors import NflowError

IDX_NAMES = {
    ("train", "images"): "train-images-idx3-ubyte", ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte", ("test", "labels"): "t10k-labels-idx1-ubyte",
}
CIFAR_TRAIN = [f"data_batch_{i}.bin" for i in range(1, 6)]
CIFAR_TEST = "test_batch.bin"
CIFAR_SIDE, CIFAR_PLANE = 32, 1024


@pytest.fixture(autouse=True)
def no_data_env(monkeypatch, tmp_path):
    """CI sets NFLOW_DATA to the real MNIST; these tests name every folder themselves. The per-user cache
    goes to a temporary folder."""
    monkeypatch.delenv("NFLOW_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


# -------------------------------------------------------------------------------------------------------------
# Specs and errors
# -------------------------------------------------------------------------------------------------------------
def test_parse_image_spec_knows_every_form(tmp_path):
    assert parse_image_spec("mnist") == ("mnist", None)
    assert parse_image_spec("CIFAR10") == ("cifar10", None)
    assert parse_image_spec("idx") == ("idx", None)
    assert parse_image_spec("idx:/d/fashion") == ("idx", "/d/fashion")
    assert parse_image_spec("npz:/d/x.npz") == ("npz", "/d/x.npz")
    assert parse_image_spec("npy:/d/x.npy") == ("npy", "/d/x.npy")
    assert parse_image_spec("npz:/d/x.npy") == ("npy", "/d/x.npy")  # the extension decides
    assert parse_image_spec("npy:/d/arrays.bin") == ("npy", "/d/arrays.bin")
    assert parse_image_spec("folder:/d/pics") == ("folder", "/d/pics")
    assert parse_image_spec("folder:~/pics") == ("folder", os.path.expanduser("~/pics"))
    assert set(IMAGE_SOURCES) >= {"mnist", "cifar10", "idx", "idx:DIR", "npz:PATH", "npy:PATH", "folder:DIR"}


@pytest.mark.parametrize("spec", ["moons", "8gaussians", "", "folder", "npz:", "cifar", "x.npz", "png:/a"])
def test_parse_image_spec_refuses_other_text_naming_the_accepted_forms(spec):
    with pytest.raises(ValueError) as info:
        parse_image_spec(spec)
    message = str(info.value)
    assert repr(spec) in message
    assert ("npz:PATH" in message and "folder:DIR" in message) or "needs a path" in message
    assert not is_image_spec(spec)


def test_parse_image_spec_hints_at_the_prefix_a_bare_path_lacks(tmp_path):
    with pytest.raises(ValueError, match="write npz:data.npz"):
        parse_image_spec("data.npz")
    with pytest.raises(ValueError, match="write folder:"):
        parse_image_spec(str(tmp_path))


def test_is_image_spec():
    assert all(is_image_spec(s) for s in ["mnist", "cifar10", "idx", "idx:d", "npz:a.npz", "npy:a", "folder:d"])
    assert not any(is_image_spec(s) for s in ["moons", "rings", None, 3])


def test_data_errors_are_nflow_errors_and_value_errors_and_mnist_error_is_unchanged():
    assert issubclass(DataError, NflowError) and issubclass(DataError, ValueError)
    assert issubclass(DataNotFoundError, DataError) and issubclass(DataNotFoundError, FileNotFoundError)
    assert MNISTError.__bases__ == (NflowError,) and MNISTNotFoundError.__bases__ == (MNISTError, FileNotFoundError)


def test_load_images_checks_its_arguments(tmp_path):
    with pytest.raises(ValueError, match="split"):
        load_images("mnist", "validation")
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="image_size"):
            load_images("mnist", "train", image_size=bad)
    with pytest.raises(ValueError, match="grey"):
        load_images("mnist", "train", grey="yes")
    with pytest.raises(ValueError, match="test_fraction"):
        load_images("mnist", "train", test_fraction=1.0)


def test_mnist_goes_through_load_mnist_with_int64_labels(tmp_path, monkeypatch):
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 1, 28, 28)
    calls = []

    def fake_load_mnist(split, data_dir=None, download=True):
        calls.append((split, data_dir, download))
        return images, np.array([3, 7], np.uint8)

    monkeypatch.setattr(sources_module, "load_mnist", fake_load_mnist)
    found = load_images("mnist", "test", data_dir="/somewhere", download=False)
    assert calls == [("test", "/somewhere", False)]
    assert found.name == "mnist" and found.split == "test" and found.image_shape == (1, 28, 28)
    assert found.labels.dtype == np.int64 and found.labels.tolist() == [3, 7]
    np.testing.assert_array_equal(found.images, images)


def test_mnist_missing_without_download_says_where_to_put_the_files(tmp_path):
    with pytest.raises(MNISTNotFoundError, match="train-images-idx3-ubyte"):
        load_images("mnist", "train", data_dir=tmp_path / "none", download=False)


# -------------------------------------------------------------------------------------------------------------
# IDX folders
# -------------------------------------------------------------------------------------------------------------
def idx_bytes(array):
    """uint8 IDX bytes written by hand: 00 00, type 0x08, ndim, big-endian uint32 sizes, then the bytes."""
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_idx(directory, split, part, array, gz=False):
    path = os.path.join(directory, IDX_NAMES[(split, part)] + (".gz" if gz else ""))
    data = idx_bytes(np.asarray(array, np.uint8))
    with open(path, "wb") as f:
        f.write(gzip.compress(data) if gz else data)
    return path


def make_idx_set(directory, n_train=4, n_test=3, side=(5, 6)):
    rng = np.random.default_rng(0)
    os.makedirs(directory, exist_ok=True)
    arrays = {}
    for split, n, gz in (("train", n_train, True), ("test", n_test, False)):
        arrays[split] = (rng.integers(0, 256, (n, *side)), rng.integers(0, 10, n))
        write_idx(directory, split, "images", arrays[split][0], gz=gz)
        write_idx(directory, split, "labels", arrays[split][1], gz=not gz)
    return arrays


@pytest.mark.parametrize("how", ["data_dir", "spec", "env"])
def test_idx_reads_any_contents_in_mnist_layout_gzipped_or_not(tmp_path, monkeypatch, how):
    arrays = make_idx_set(tmp_path / "fashion")
    if how == "env":
        monkeypatch.setenv("NFLOW_DATA", str(tmp_path / "fashion"))
    spec = f"idx:{tmp_path / 'fashion'}" if how == "spec" else "idx"
    data_dir = tmp_path / "fashion" if how == "data_dir" else None
    for split, n in (("train", 4), ("test", 3)):
        found = load_images(spec, split, data_dir)
        assert isinstance(found, ImageSet) and found.split == split and found.name == f"idx:{tmp_path / 'fashion'}"
        assert found.images.shape == (n, 1, 5, 6) and found.images.dtype == np.uint8 and found.image_shape == (1, 5, 6)
        np.testing.assert_array_equal(found.images[:, 0], arrays[split][0])
        assert found.labels.dtype == np.int64 and found.labels.tolist() == arrays[split][1].tolist()


def test_idx_labels_are_optional(tmp_path):
    write_idx(tmp_path, "test", "images", np.zeros((2, 4, 4)))
    assert load_images(f"idx:{tmp_path}", "test").labels is None


def test_idx_refuses_label_count_mismatch_naming_both_files(tmp_path):
    images = write_idx(tmp_path, "train", "images", np.zeros((4, 4, 4)))
    labels = write_idx(tmp_path, "train", "labels", np.zeros(3), gz=True)
    with pytest.raises(DataError) as info:
        load_images(f"idx:{tmp_path}", "train")
    assert f"{images} holds 4 images but {labels} holds 3 labels" in str(info.value)


def test_idx_refuses_images_that_are_not_three_dimensional(tmp_path):
    path = write_idx(tmp_path, "train", "images", np.zeros((2, 3, 4, 4)))
    with pytest.raises(DataError) as info:
        load_images(f"idx:{tmp_path}", "train")
    assert path in str(info.value) and "(2, 3, 4, 4)" in str(info.value) and "(N, H, W)" in str(info.value)


def test_idx_missing_images_or_folder_is_named(tmp_path):
    write_idx(tmp_path, "train", "images", np.zeros((2, 4, 4)))
    with pytest.raises(DataNotFoundError) as info:
        load_images(f"idx:{tmp_path}", "test")
    assert str(tmp_path) in str(info.value) and "t10k-images-idx3-ubyte" in str(info.value)
    with pytest.raises(DataNotFoundError, match="no such directory"):
        load_images(f"idx:{tmp_path / 'absent'}", "test")
    with pytest.raises(DataNotFoundError, match="NFLOW_DATA"):
        load_images("idx", "train")  # no data_dir, no NFLOW_DATA


# -------------------------------------------------------------------------------------------------------------
# CIFAR-10 binary files
# -------------------------------------------------------------------------------------------------------------
def pixel_value(k, c, y, x):
    """A value that differs between neighbouring records, channels, rows and columns."""
    return (37 * k + 101 * c + 7 * y + 3 * x) % 256


def cifar_record(k, label):
    """Record k as CIFAR-10's documentation lays it out: the label byte, then byte 1 + c·1024 + y·32 + x holds
    pixel (c, y, x)."""
    record = np.zeros(1 + 3 * CIFAR_PLANE, np.uint8)
    record[0] = label
    c, y, x = np.meshgrid(np.arange(3), np.arange(CIFAR_SIDE), np.arange(CIFAR_SIDE), indexing="ij")
    record[1 + c * CIFAR_PLANE + y * CIFAR_SIDE + x] = pixel_value(k, c, y, x)
    return record.tobytes()


def cifar_labels(k):
    return (3 * k + 1) % 10


def make_cifar(directory):
    """Five one-record training files (records 0..4) and a three-record test file (records 5..7)."""
    os.makedirs(directory, exist_ok=True)
    for k, name in enumerate(CIFAR_TRAIN):
        with open(os.path.join(directory, name), "wb") as f:
            f.write(cifar_record(k, cifar_labels(k)))
    with open(os.path.join(directory, CIFAR_TEST), "wb") as f:
        f.write(b"".join(cifar_record(k, cifar_labels(k)) for k in (5, 6, 7)))


def assert_cifar_records(found, first_record):
    k = np.arange(first_record, first_record + len(found))[:, None, None, None]
    c, y, x = np.meshgrid(np.arange(3), np.arange(CIFAR_SIDE), np.arange(CIFAR_SIDE), indexing="ij")
    np.testing.assert_array_equal(found.images, pixel_value(k, c, y, x).astype(np.uint8))
    assert found.labels.tolist() == [cifar_labels(int(i)) for i in k.ravel()]


@pytest.mark.parametrize("sub_folder", ["", "cifar-10-batches-bin"])
def test_cifar10_puts_byte_1_plus_c1024_plus_y32_plus_x_at_pixel_c_y_x(tmp_path, sub_folder):
    make_cifar(tmp_path / sub_folder)
    train = load_images("cifar10", "train", tmp_path, download=False)
    assert train.images.shape == (5, 3, 32, 32) and train.images.dtype == np.uint8
    assert train.name == "cifar10" and train.labels.dtype == np.int64 and train.class_names[0] == "airplane"
    assert_cifar_records(train, 0)  # batches 1..5 in order
    assert_cifar_records(load_images("cifar10", "test", tmp_path, download=False), 5)


def test_cifar10_grey_and_image_size_apply(tmp_path):
    make_cifar(tmp_path)
    found = load_images("cifar10", "test", tmp_path, download=False, grey=True, image_size=8)
    assert found.images.shape == (3, 1, 8, 8) and found.images.dtype == np.uint8


def test_cifar10_refuses_a_file_that_is_not_whole_records(tmp_path):
    make_cifar(tmp_path)
    path = tmp_path / CIFAR_TEST
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DataError) as info:
        load_images("cifar10", "test", tmp_path, download=False)
    assert str(path) in str(info.value) and str(3 * 3073 - 5) in str(info.value) and "3073" in str(info.value)


def test_cifar10_refuses_a_label_out_of_range(tmp_path):
    make_cifar(tmp_path)
    (tmp_path / CIFAR_TEST).write_bytes(cifar_record(0, 3) + cifar_record(1, 12))
    with pytest.raises(DataError, match="record 1 has label 12") as info:
        load_images("cifar10", "test", tmp_path, download=False)
    assert CIFAR_TEST in str(info.value)


def test_cifar10_missing_without_download_says_where_to_put_the_files(tmp_path):
    make_cifar(tmp_path)
    os.remove(tmp_path / "data_batch_3.bin")
    with pytest.raises(DataNotFoundError) as info:
        load_images("cifar10", "train", tmp_path, download=False)
    message = str(info.value)
    assert "data_batch_3.bin is not in" in message and str(tmp_path) in message
    assert "cifar-10-batches-bin/" in message and "NFLOW_DATA" in message and cifar10_module.URL in message


def test_cifar10_failed_download_lists_the_url_and_keeps_nothing(tmp_path, monkeypatch):
    def refuse(url, timeout=None):
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(cifar10_module.urllib.request, "urlopen", refuse)
    with pytest.raises(DataNotFoundError) as info:
        load_images("cifar10", "test", tmp_path / "cifar")
    message = str(info.value)
    assert cifar10_module.URL in message and "no network in tests" in message and "Put the CIFAR-10" in message
    assert os.listdir(tmp_path / "cifar") == []  # the temporary download is gone


def make_tarball(path, extra_members=()):
    """A tar.gz in the official layout (cifar-10-batches-bin/*.bin), after ``extra_members``: (name, bytes) for a
    file, (name, link target) for a symbolic link."""
    source = path.parent / "source"
    make_cifar(source)
    with tarfile.open(path, "w:gz") as archive:
        for name, content in list(extra_members) + [(f"cifar-10-batches-bin/{n}", (source / n).read_bytes())
                                                    for n in CIFAR_TRAIN + [CIFAR_TEST]]:
            info = tarfile.TarInfo(name)
            if isinstance(content, str):
                info.type, info.linkname = tarfile.SYMTYPE, content
                archive.addfile(info)
            else:
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_cifar10_download_checks_the_md5_and_writes_only_the_six_batch_files(tmp_path, monkeypatch):
    tarball = tmp_path / "served" / "cifar-10-binary.tar.gz"
    tarball.parent.mkdir()
    evil = [("../escaped.bin", b"x"), ("/tmp/absolute-nflow-test.bin", b"x"),
            ("cifar-10-batches-bin/../../escaped2.bin", b"x"), ("cifar-10-batches-bin/readme.html", b"x"),
            ("cifar-10-batches-bin/test_batch.bin", "../../../../../etc/hostname")]  # a link under a wanted name
    md5 = make_tarball(tarball, evil)
    monkeypatch.setattr(cifar10_module, "URL", tarball.as_uri())  # file://, no network
    monkeypatch.setattr(cifar10_module, "TARBALL_MD5", md5)
    dest = tmp_path / "data" / "cifar"
    assert_cifar_records(load_images("cifar10", "test", dest), 5)
    assert os.listdir(dest) == ["cifar-10-batches-bin"]
    assert sorted(os.listdir(dest / "cifar-10-batches-bin")) == sorted(CIFAR_TRAIN + [CIFAR_TEST])
    assert not os.path.islink(dest / "cifar-10-batches-bin" / CIFAR_TEST)
    assert not (tmp_path / "data" / "escaped.bin").exists() and not (tmp_path / "data" / "escaped2.bin").exists()
    assert not os.path.exists("/tmp/absolute-nflow-test.bin")


def test_cifar10_download_with_the_wrong_md5_keeps_nothing(tmp_path, monkeypatch):
    tarball = tmp_path / "cifar-10-binary.tar.gz"
    make_tarball(tarball)
    monkeypatch.setattr(cifar10_module, "URL", tarball.as_uri())
    dest = tmp_path / "dest"
    with pytest.raises(DataNotFoundError, match="checksum mismatch") as info:
        load_images("cifar10", "train", dest)
    assert cifar10_module.TARBALL_MD5 in str(info.value)
    assert os.listdir(dest) == []


# -------------------------------------------------------------------------------------------------------------
# NumPy arrays
# -------------------------------------------------------------------------------------------------------------
N_ARRAY = 10
ARRAY_RNG = np.random.default_rng(5)
NCHW_RGB = ARRAY_RNG.integers(0, 256, (N_ARRAY, 3, 4, 6)).astype(np.uint8)
NCHW_GREY = NCHW_RGB[:, :1].copy()
LAYOUTS = {  # name -> (array as stored, what load_images must return)
    "NHW uint8": (NCHW_GREY[:, 0], NCHW_GREY),
    "N1HW uint8": (NCHW_GREY, NCHW_GREY),
    "N3HW uint8": (NCHW_RGB, NCHW_RGB),
    "NHW1 uint8": (NCHW_GREY.transpose(0, 2, 3, 1), NCHW_GREY),
    "NHW3 uint8": (NCHW_RGB.transpose(0, 2, 3, 1), NCHW_RGB),
    "N3HW int64 0..255": (NCHW_RGB.astype(np.int64), NCHW_RGB),
    "NHW3 float32": ((NCHW_RGB / 255).astype(np.float32).transpose(0, 2, 3, 1), (NCHW_RGB / 255).astype(np.float32)),
    "N1HW float64": (NCHW_GREY / 255, (NCHW_GREY / 255).astype(np.float32)),
    "N3H3 channels first": (NCHW_RGB[:, :, :, :3], NCHW_RGB[:, :, :, :3]),
}


def whole_set(spec, **kwargs):
    """Train, test, and all their images together (train first)."""
    train, test = load_images(spec, "train", **kwargs), load_images(spec, "test", **kwargs)
    images = np.concatenate([train.images, test.images])
    return train, test, images


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("kind", ["npy", "npz"])
def test_arrays_in_every_accepted_layout_and_dtype(tmp_path, layout, kind):
    stored, expected = LAYOUTS[layout]
    path = tmp_path / f"data.{kind}"
    np.save(path, stored) if kind == "npy" else np.savez(path, images=stored)
    train, test, images = whole_set(f"{kind}:{path}")
    assert train.name == f"{kind}:{path}" and train.labels is None and len(test) == 1
    assert images.shape == expected.shape and images.dtype == expected.dtype and train.images.flags.c_contiguous
    assert sorted(_indices_of(images, expected)) == list(range(N_ARRAY))  # every image, exactly, once


def _indices_of(found, expected):
    """Where each image of ``found`` sits in ``expected`` (the images there are all different)."""
    flat = expected.reshape(len(expected), -1)
    return [int(np.flatnonzero((flat == image.ravel()).all(axis=1))[0]) for image in found]


@pytest.mark.parametrize("keys", [("images", "labels"), ("x", "y"), ("train_images", "train_labels")])
def test_npz_keys_for_images_and_labels(tmp_path, keys):
    labels = np.arange(N_ARRAY) % 3
    np.savez(tmp_path / "d.npz", **{keys[0]: NCHW_GREY, keys[1]: labels.reshape(-1, 1)})  # (N, 1) labels too
    train = load_images(f"npz:{tmp_path / 'd.npz'}", "train", test_fraction=0.3, seed=4)
    test = load_images(f"npz:{tmp_path / 'd.npz'}", "test", test_fraction=0.3, seed=4)
    for part in (train, test):
        assert part.labels.dtype == np.int64
        np.testing.assert_array_equal(part.labels, labels[_indices_of(part.images, NCHW_GREY)])


def test_npz_with_its_own_test_arrays_uses_them(tmp_path):
    path = tmp_path / "mnist.npz"  # Keras' layout
    np.savez(path, x_train=NCHW_GREY[:7, 0], y_train=np.arange(7), x_test=NCHW_GREY[7:, 0], y_test=np.arange(3))
    train, test = load_images(f"npz:{path}", "train"), load_images(f"npz:{path}", "test")
    np.testing.assert_array_equal(train.images, NCHW_GREY[:7])
    np.testing.assert_array_equal(test.images, NCHW_GREY[7:])
    assert train.labels.tolist() == list(range(7)) and test.labels.tolist() == [0, 1, 2]


def test_the_held_out_split_is_disjoint_deterministic_and_the_stated_fraction(tmp_path):
    n = 40
    images = np.arange(n, dtype=np.uint8)[:, None, None, None] * np.ones((1, 1, 2, 2), np.uint8)  # image i is i
    np.savez(tmp_path / "d.npz", images=images, labels=np.arange(n))
    spec = f"npz:{tmp_path / 'd.npz'}"
    train = load_images(spec, "train", test_fraction=0.25, seed=7)
    test = load_images(spec, "test", test_fraction=0.25, seed=7)
    assert len(test) == 10 and len(train) == 30
    train_ids, test_ids = set(train.labels.tolist()), set(test.labels.tolist())
    assert not train_ids & test_ids and train_ids | test_ids == set(range(n))
    assert train.labels.tolist() == sorted(train_ids)  # kept in file order
    np.testing.assert_array_equal(train.images[:, 0, 0, 0], train.labels)  # images follow their labels
    again = load_images(spec, "test", test_fraction=0.25, seed=7)
    assert again.labels.tolist() == test.labels.tolist()
    assert load_images(spec, "test", test_fraction=0.25, seed=8).labels.tolist() != test.labels.tolist()
    assert len(load_images(spec, "test", test_fraction=0.01)) == 1  # at least one


def test_arrays_grey_and_image_size_apply(tmp_path):
    np.save(tmp_path / "d.npy", NCHW_GREY[:, 0])
    found = load_images(f"npy:{tmp_path / 'd.npy'}", "train", grey=False, image_size=3)
    assert found.images.shape == (9, 3, 3, 3)
    np.testing.assert_array_equal(found.images[:, 0], found.images[:, 2])
    rgb = np.zeros((2, 3, 4, 4), np.uint8)
    rgb[:, 0], rgb[:, 1], rgb[:, 2] = 200, 100, 50
    np.save(tmp_path / "rgb.npy", rgb)
    grey = load_images(f"npy:{tmp_path / 'rgb.npy'}", "train", grey=True).images
    assert grey.shape == (1, 1, 4, 4)
    assert (grey == np.asarray(Image.new("RGB", (1, 1), (200, 100, 50)).convert("L"))[0, 0]).all()  # Pillow's luma


@pytest.mark.parametrize("array, words", [
    (np.zeros((4, 4), np.uint8), ["2-D", "(4, 4)"]),
    (np.zeros((2, 1, 3, 4, 4), np.uint8), ["5-D", "(2, 1, 3, 4, 4)"]),
    (np.zeros((2, 4, 5, 5), np.uint8), ["(2, 4, 5, 5)", "neither 1 nor 3 channels"]),
    (np.zeros((2, 5, 5, 4), np.uint8), ["(2, 5, 5, 4)", "neither 1 nor 3 channels"]),
    (np.zeros((0, 4, 4), np.uint8), ["no images", "(0, 4, 4)"]),
    (np.full((2, 4, 4), 1.5, np.float32) - np.eye(4, dtype=np.float32) * 2, ["[0, 1]", "-0.5..1.5"]),
    (np.array([[[0.5, np.nan]]]), ["NaN or infinite"]),
    (np.full((2, 4, 4), 300, np.int32), ["0..255", "300..300"]),
    (np.zeros((2, 4, 4), bool), ["dtype bool"]),
])
def test_arrays_refuse_what_cannot_be_images_naming_the_file(tmp_path, array, words):
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(DataError) as info:
        load_images(f"npy:{tmp_path / 'bad.npy'}", "train")
    assert str(tmp_path / "bad.npy") in str(info.value)
    for word in words:
        assert word in str(info.value)


def test_arrays_refuse_a_label_count_mismatch_naming_both_counts(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, images=NCHW_GREY, labels=np.zeros(N_ARRAY - 1, int))
    with pytest.raises(DataError) as info:
        load_images(f"npz:{path}", "train")
    assert f"{path}[images] holds {N_ARRAY} images but {path}[labels] holds {N_ARRAY - 1} labels" in str(info.value)


def test_arrays_refuse_unknown_keys_pickles_garbage_and_absent_files(tmp_path):
    np.savez(tmp_path / "keys.npz", a=NCHW_GREY, b=NCHW_GREY)
    with pytest.raises(DataError, match=r"found arrays \['a', 'b'\].*images"):
        load_images(f"npz:{tmp_path / 'keys.npz'}", "train")
    np.savez(tmp_path / "objects.npz", images=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(DataError, match="unpickling") as info:
        load_images(f"npz:{tmp_path / 'objects.npz'}", "train")
    assert "objects.npz[images]" in str(info.value)
    (tmp_path / "text.npy").write_text("not numpy at all")
    with pytest.raises(DataError, match="text.npy"):
        load_images(f"npy:{tmp_path / 'text.npy'}", "train")
    with pytest.raises(DataNotFoundError, match="absent.npz: no such file"):
        load_images(f"npz:{tmp_path / 'absent.npz'}", "train")


def test_arrays_too_few_to_hold_out_a_test_split(tmp_path):
    np.save(tmp_path / "one.npy", NCHW_GREY[:1])
    with pytest.raises(DataError, match="1 images are too few") as info:
        load_images(f"npy:{tmp_path / 'one.npy'}", "train")
    assert "one.npy" in str(info.value)


# -------------------------------------------------------------------------------------------------------------
# Picture folders
# -------------------------------------------------------------------------------------------------------------
def save(path, array, mode=None, **kwargs):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image = Image.fromarray(np.asarray(array)) if mode is None else Image.fromarray(np.asarray(array)).convert(mode)
    image.save(path, **kwargs)
    return str(path)


def rgb_picture(k, side=(6, 5)):
    h, w = side
    return ((np.arange(h * w * 3).reshape(h, w, 3) * (k + 3)) % 256).astype(np.uint8)


def test_folder_of_rgb_pngs_without_classes(tmp_path):
    for k in range(4):
        save(tmp_path / "pics" / f"p{k}.png", rgb_picture(k))
    (tmp_path / "pics" / "notes.txt").write_text("not a picture")
    (tmp_path / "pics" / "._p0.png").write_bytes(b"macOS junk")  # hidden: skipped
    train, test, images = whole_set(f"folder:{tmp_path / 'pics'}", test_fraction=0.25)
    assert train.name == f"folder:{tmp_path / 'pics'}" and train.labels is None and train.class_names is None
    assert images.shape == (4, 3, 6, 5) and images.dtype == np.uint8 and len(test) == 1
    expected = np.stack([rgb_picture(k) for k in range(4)]).transpose(0, 3, 1, 2)
    assert sorted(_indices_of(images, expected)) == [0, 1, 2, 3]  # PNG is lossless: every picture exactly


def test_folder_sub_folders_are_classes_in_sorted_order(tmp_path):
    for cls, k in (("zebra", 0), ("ant", 1), ("ant", 2), ("mole", 3)):
        save(tmp_path / "d" / cls / f"{k}.png", rgb_picture(k))
    train, test, images = whole_set(f"folder:{tmp_path / 'd'}", test_fraction=0.25)
    assert train.class_names == test.class_names == ("ant", "mole", "zebra")
    labels = np.concatenate([train.labels, test.labels])
    expected = np.stack([rgb_picture(k) for k in range(4)]).transpose(0, 3, 1, 2)
    assert {k: int(label) for k, label in zip(_indices_of(images, expected), labels)} == {0: 2, 1: 0, 2: 0, 3: 1}


def test_folder_all_grey_is_one_channel_mixed_is_rgb_and_grey_true_matches_pillow(tmp_path):
    grey_pictures = [rgb_picture(k)[:, :, 0] for k in range(3)]
    for k, picture in enumerate(grey_pictures):
        save(tmp_path / "grey" / f"{k}.png", picture)
    save(tmp_path / "grey" / "mono.png", (np.eye(6, 5) * 255).astype(np.uint8), mode="1")
    _, _, images = whole_set(f"folder:{tmp_path / 'grey'}")
    assert images.shape == (4, 1, 6, 5)

    save(tmp_path / "mixed" / "a.png", grey_pictures[0])
    save(tmp_path / "mixed" / "b.png", rgb_picture(5))
    _, _, images = whole_set(f"folder:{tmp_path / 'mixed'}", test_fraction=0.5)
    assert images.shape == (2, 3, 6, 5)
    grey_as_rgb = np.repeat(grey_pictures[0][None], 3, axis=0)
    assert any((image == grey_as_rgb).all() for image in images)

    _, _, forced = whole_set(f"folder:{tmp_path / 'mixed'}", test_fraction=0.5, grey=True)
    assert forced.shape == (2, 1, 6, 5)
    pillow = np.asarray(Image.fromarray(rgb_picture(5)).convert("L"))
    assert any((image[0] == pillow).all() for image in forced)


def test_folder_reads_jpeg_in_any_case_of_extension_and_16_bit_png(tmp_path):
    flat = np.full((8, 8, 3), (200, 40, 90), np.uint8)
    save(tmp_path / "j" / "a.JPG", flat, quality=95)
    save(tmp_path / "j" / "b.jpeg", flat, quality=95)
    save(tmp_path / "j" / "c.Png", flat)
    _, _, images = whole_set(f"folder:{tmp_path / 'j'}", test_fraction=0.3)
    assert images.shape == (3, 3, 8, 8)
    assert np.abs(images.astype(int) - flat.transpose(2, 0, 1)[None]).max() <= 4  # JPEG is lossy
    deep = Image.fromarray(np.array([[0, 65535], [32896, 257]], np.uint16))  # mode I;16
    os.makedirs(tmp_path / "deep")
    for name in ("x.png", "y.png"):
        deep.save(tmp_path / "deep" / name)
    _, _, images = whole_set(f"folder:{tmp_path / 'deep'}", test_fraction=0.5)
    assert images.shape == (2, 1, 2, 2) and images[0, 0].tolist() == [[0, 255], [128, 1]]


def test_folder_pictures_are_turned_upright_by_their_exif_orientation(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the camera was turned; viewers rotate the stored picture 90° clockwise
    stored = np.zeros((4, 8), np.uint8)
    stored[0, 0] = 255  # top left as stored -> top right as shown
    os.makedirs(tmp_path / "e")
    for name in ("a.png", "b.png"):
        Image.fromarray(stored).save(tmp_path / "e" / name, exif=exif)
    found = load_images(f"folder:{tmp_path / 'e'}", "train", test_fraction=0.5)
    assert found.images.shape == (1, 1, 8, 4) and found.images[0, 0, 0, 3] == 255


def test_folder_image_size_takes_the_centred_square(tmp_path):
    wide = np.zeros((4, 12), np.uint8)
    wide[:, 4:8] = np.arange(16).reshape(4, 4) * 10 + 50  # the centre square; black sides
    save(tmp_path / "w" / "a.png", wide)
    save(tmp_path / "w" / "b.png", np.full((10, 6), 255, np.uint8))  # tall, one colour: 6×6 scaled to 4×4
    _, _, images = whole_set(f"folder:{tmp_path / 'w'}", image_size=4, test_fraction=0.5)
    assert images.shape == (2, 1, 4, 4)
    assert any((image[0] == wide[:, 4:8]).all() for image in images)  # the shorter side is 4: cut, not scaled
    assert any((image == 255).all() for image in images)


def test_folder_refuses_mixed_sizes_naming_two_files_and_their_sizes(tmp_path):
    a = save(tmp_path / "m" / "a.png", rgb_picture(0, (6, 5)))
    b = save(tmp_path / "m" / "b.png", rgb_picture(1, (7, 5)))
    with pytest.raises(DataError) as info:
        load_images(f"folder:{tmp_path / 'm'}", "train")
    message = str(info.value)
    assert f"{a} is 5×6" in message and f"{b} is 5×7" in message and "image size" in message


def test_folder_refuses_corrupt_files_mixing_and_emptiness(tmp_path):
    save(tmp_path / "c" / "good.png", rgb_picture(0))
    (tmp_path / "c" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage")
    with pytest.raises(DataError) as info:
        load_images(f"folder:{tmp_path / 'c'}", "train")
    assert str(tmp_path / "c" / "broken.png") in str(info.value)

    save(tmp_path / "x" / "loose.png", rgb_picture(0))
    save(tmp_path / "x" / "cats" / "c.png", rgb_picture(1))
    with pytest.raises(DataError, match="both directly") as info:
        load_images(f"folder:{tmp_path / 'x'}", "train")
    assert "loose.png" in str(info.value) and "cats/" in str(info.value)

    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(DataError, match="holds no PNG or JPEG"):
        load_images(f"folder:{tmp_path / 'empty'}", "train")
    with pytest.raises(DataNotFoundError, match="no such folder"):
        load_images(f"folder:{tmp_path / 'absent'}", "train")


def test_folder_cache_is_used_on_the_second_call_and_refreshed_when_a_file_changes(tmp_path, monkeypatch):
    for k in range(3):
        path = save(tmp_path / "f" / f"{k}.png", rgb_picture(k))
    spec = f"folder:{tmp_path / 'f'}"
    _, _, first = whole_set(spec)
    assert os.path.isfile(tmp_path / "f" / ".nflow-cache-native-auto.npz")

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although cached")

    real_open = folder_module.Image.open
    monkeypatch.setattr(folder_module.Image, "open", no_decoding)
    _, _, second = whole_set(spec)
    np.testing.assert_array_equal(first, second)

    os.utime(path, ns=(1, 1_000_000_000))  # touched: same bytes, another modification time
    with pytest.raises(AssertionError, match="decoded although cached"):  # the stale cache is not used
        load_images(spec, "train")
    monkeypatch.setattr(folder_module.Image, "open", real_open)
    save(path, rgb_picture(9))  # rewritten: read anew
    _, _, third = whole_set(spec)
    expected = np.stack([rgb_picture(k) for k in (0, 1, 9)]).transpose(0, 3, 1, 2)
    assert sorted(_indices_of(third, expected)) == [0, 1, 2]


def test_folder_cache_falls_back_to_the_user_cache_when_the_folder_cannot_take_it(tmp_path, monkeypatch):
    for k in range(2):
        save(tmp_path / "ro" / f"{k}.png", rgb_picture(k))
    (tmp_path / "ro" / ".nflow-cache-4-RGB.npz").mkdir()  # in the way: the folder's cache cannot be written
    load_images(f"folder:{tmp_path / 'ro'}", "train", image_size=4, grey=False, test_fraction=0.5)
    cached = os.listdir(tmp_path / "xdg-cache" / "nflow" / "folders")
    assert len(cached) == 1 and cached[0].endswith("-4-RGB.npz")
    monkeypatch.setattr(folder_module.Image, "open", lambda *a, **k: 1 / 0)
    found = load_images(f"folder:{tmp_path / 'ro'}", "test", image_size=4, grey=False, test_fraction=0.5)
    assert found.images.shape == (1, 3, 4, 4)
