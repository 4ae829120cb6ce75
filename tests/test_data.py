"""Data: the IDX reader (synthetic files written here byte by byte, and the real MNIST when NFLOW_DATA is set),
the download path against a local HTTP server, dequantization, the toy densities and the batch sampler."""
import gzip
import hashlib
import http.server
import math
import os
import struct
import threading

import numpy as np
import pytest

from nflow.data import (DENSITIES, BatchSampler, IDXError, MNISTError, MNISTNotFoundError, dequantize,
                        download_mnist, grid_points, iterate_batches, load_mnist, quantize, read_idx, sample_toy)
from nflow.data import mnist as mnist_module
from nflow.data.dequantize import default_n_bins, to_continuous

MNIST_NAMES = {
    ("train", "images"): "train-images-idx3-ubyte", ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte", ("test", "labels"): "t10k-labels-idx1-ubyte",
}


def idx_bytes(array, type_code, fmt):
    """IDX bytes written independently of nflow: magic 00 00, type, ndim, big-endian sizes, big-endian data."""
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape)
    return header + struct.pack(f">{array.size}{fmt}", *array.ravel().tolist())


def write(path, data, gz=False):
    with open(path, "wb") as f:
        f.write(gzip.compress(data) if gz else data)
    return str(path)


# -------------------------------------------------------------------------------------------------------------
# IDX reader on synthetic files
# -------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype, code, fmt", [(np.uint8, 0x08, "B"), (np.int8, 0x09, "b"), (np.int16, 0x0B, "h"),
                                              (np.int32, 0x0C, "i"), (np.float32, 0x0D, "f"),
                                              (np.float64, 0x0E, "d")])
def test_read_idx_round_trips_every_element_type(tmp_path, rng, gz, dtype, code, fmt):
    array = (rng.integers(-100, 100, size=(3, 4, 5)) if np.dtype(dtype).kind == "i"
             else rng.integers(0, 256, size=(3, 4, 5)) if dtype == np.uint8
             else rng.normal(size=(3, 4, 5))).astype(dtype)
    path = write(tmp_path / "x.idx", idx_bytes(array, code, fmt), gz)
    out = read_idx(path)
    assert out.shape == (3, 4, 5) and out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, array)


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_rejects_a_bad_magic_number(tmp_path, gz):
    data = bytearray(idx_bytes(np.zeros((2, 2), np.uint8), 0x08, "B"))
    data[0] = 0x12
    path = write(tmp_path / "bad-magic", bytes(data), gz)
    with pytest.raises(IDXError, match="magic") as info:
        read_idx(path)
    assert "bad-magic" in str(info.value)


def test_read_idx_rejects_an_unknown_type_code(tmp_path):
    data = bytearray(idx_bytes(np.zeros((2, 2), np.uint8), 0x08, "B"))
    data[2] = 0x07
    with pytest.raises(IDXError, match="element type 0x07"):
        read_idx(write(tmp_path / "f", bytes(data)))


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_rejects_truncated_data(tmp_path, gz):
    data = idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4), 0x08, "B")
    path = write(tmp_path / "short", data[:-1], gz)
    with pytest.raises(IDXError, match="truncated") as info:
        read_idx(path)
    assert "short" in str(info.value) and "24" in str(info.value)


def test_read_idx_rejects_a_truncated_header_and_trailing_bytes(tmp_path):
    data = idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4), 0x08, "B")
    with pytest.raises(IDXError, match="header"):
        read_idx(write(tmp_path / "h", data[:9]))  # 3 dimensions need 16 header bytes
    with pytest.raises(IDXError, match="too short"):
        read_idx(write(tmp_path / "t", data[:3]))
    with pytest.raises(IDXError, match="trailing"):
        read_idx(write(tmp_path / "long", data + b"\x00"))


def test_read_idx_rejects_a_truncated_gzip_stream(tmp_path):
    data = gzip.compress(idx_bytes(np.arange(2000, dtype=np.int32).reshape(20, 100), 0x0C, "i"))
    with pytest.raises(IDXError, match="gzip") as info:
        read_idx(write(tmp_path / "cut.gz", data[: len(data) // 2]))
    assert "cut.gz" in str(info.value)


# -------------------------------------------------------------------------------------------------------------
# load_mnist on a synthetic directory
# -------------------------------------------------------------------------------------------------------------
def make_fake_mnist(directory, n=5, seed=0, gz_images=True, gz_labels=False, labels=None):
    """Four IDX files in the MNIST layout, small, with random pixels; returns {(split, part): array}."""
    r = np.random.default_rng(seed)
    out = {}
    for split in ("train", "test"):
        images = r.integers(0, 256, size=(n, 28, 28)).astype(np.uint8)
        lab = r.integers(0, 10, size=n).astype(np.uint8) if labels is None else np.asarray(labels, np.uint8)
        write(os.path.join(directory, MNIST_NAMES[(split, "images")] + (".gz" if gz_images else "")),
              idx_bytes(images, 0x08, "B"), gz_images)
        write(os.path.join(directory, MNIST_NAMES[(split, "labels")] + (".gz" if gz_labels else "")),
              idx_bytes(lab, 0x08, "B"), gz_labels)
        out[(split, "images")], out[(split, "labels")] = images, lab
    return out


def test_load_mnist_reads_a_directory_of_mixed_gzipped_and_plain_files(tmp_path):
    arrays = make_fake_mnist(tmp_path)
    images, labels = load_mnist("test", data_dir=tmp_path, download=False, verify=False)
    assert images.shape == (5, 1, 28, 28) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[:, 0], arrays[("test", "images")])
    np.testing.assert_array_equal(labels, arrays[("test", "labels")])


def test_load_mnist_takes_the_directory_from_nflow_data(tmp_path, monkeypatch):
    arrays = make_fake_mnist(tmp_path, seed=3)
    monkeypatch.setenv("NFLOW_DATA", str(tmp_path))
    _, labels = load_mnist("train", download=False, verify=False)
    np.testing.assert_array_equal(labels, arrays[("train", "labels")])


def test_load_mnist_verify_rejects_files_that_are_not_the_original(tmp_path):
    make_fake_mnist(tmp_path)
    with pytest.raises(MNISTError, match="checksum mismatch"):
        load_mnist("train", data_dir=tmp_path, download=False, verify=True)


def test_load_mnist_rejects_out_of_range_labels(tmp_path):
    make_fake_mnist(tmp_path, n=3, labels=[1, 10, 2])
    with pytest.raises(MNISTError, match="out of range"):
        load_mnist("train", data_dir=tmp_path, download=False, verify=False)


def test_load_mnist_without_files_and_without_download_says_where_to_put_them(tmp_path):
    with pytest.raises(MNISTNotFoundError) as info:
        load_mnist("train", data_dir=tmp_path / "empty", download=False)
    message = str(info.value)
    assert str(tmp_path / "empty") in message and "NFLOW_DATA" in message and "--data-dir" in message
    assert "train-images-idx3-ubyte.gz" in message


def test_the_pinned_checksums_are_the_well_known_ones():
    # The MD5s everyone pins for MNIST (torchvision's resources list and the decompressed files), typed
    # here independently of nflow's table: a typo there would make every download fail.
    assert mnist_module.GZ_MD5["train-images-idx3-ubyte.gz"] == "f68b3c2dcbeaaa9fbdd348bbdeb94873"
    assert mnist_module.GZ_MD5["t10k-labels-idx1-ubyte.gz"] == "ec29112dd5afa0611ce80d1b7f02629c"
    assert mnist_module.IDX_MD5["train-images-idx3-ubyte"] == "6bbc9ace898e44ae57da46a324031adb"
    assert mnist_module.IDX_MD5["t10k-labels-idx1-ubyte"] == "27ae3e4e09519cfbb04c329615203637"


# -------------------------------------------------------------------------------------------------------------
# Download from a local HTTP server
# -------------------------------------------------------------------------------------------------------------
class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_dir(tmp_path):
    """A directory served over HTTP on 127.0.0.1; yields (directory, base URL)."""
    served = tmp_path / "served"
    served.mkdir()

    def handler(*args, **kwargs):
        return QuietHandler(*args, directory=str(served), **kwargs)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def closed_port_url():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"  # nothing listens there any more


def test_download_falls_back_across_mirrors_and_verifies_checksums(tmp_path, http_dir):
    served, url = http_dir
    arrays = make_fake_mnist(served, gz_images=True, gz_labels=True)
    idx_md5 = {}
    for (split, part), name in MNIST_NAMES.items():
        idx_md5[name] = hashlib.md5(gzip.decompress((served / (name + ".gz")).read_bytes())).hexdigest()
    dest = tmp_path / "dest"
    written = download_mnist(dest, mirrors=[closed_port_url(), url], gz_md5={}, idx_md5=idx_md5, timeout=5)
    assert sorted(os.path.basename(p) for p in written) == sorted(n + ".gz" for n in MNIST_NAMES.values())
    assert sorted(os.listdir(dest)) == sorted(n + ".gz" for n in MNIST_NAMES.values())  # no temporary files
    np.testing.assert_array_equal(read_idx(dest / "t10k-images-idx3-ubyte.gz"), arrays[("test", "images")])


def test_download_refuses_a_file_with_the_wrong_checksum_and_keeps_nothing(tmp_path, http_dir):
    served, url = http_dir
    make_fake_mnist(served, gz_images=True, gz_labels=True)
    wrong = {name: "0" * 32 for name in MNIST_NAMES.values()}
    dest = tmp_path / "dest"
    with pytest.raises(MNISTNotFoundError, match="checksum mismatch"):
        download_mnist(dest, mirrors=[url], gz_md5={}, idx_md5=wrong, timeout=5)
    assert os.listdir(dest) == []


def test_load_mnist_downloads_missing_files_through_the_module_mirrors(tmp_path, http_dir, monkeypatch):
    served, url = http_dir
    arrays = make_fake_mnist(served, gz_images=True, gz_labels=True)
    md5 = {n: hashlib.md5(gzip.decompress((served / (n + ".gz")).read_bytes())).hexdigest()
           for n in MNIST_NAMES.values()}
    monkeypatch.setattr(mnist_module, "MIRRORS", (url,))
    monkeypatch.setattr(mnist_module, "IDX_MD5", md5)
    images, _ = load_mnist("test", data_dir=tmp_path / "cache", download=True, verify=False)
    np.testing.assert_array_equal(images[:, 0], arrays[("test", "images")])
    assert sorted(os.listdir(tmp_path / "cache")) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


def test_offline_download_fails_with_a_message_naming_the_directory_and_the_variable(tmp_path):
    dest = tmp_path / "mnist"
    with pytest.raises(MNISTNotFoundError) as info:
        download_mnist(dest, mirrors=[closed_port_url()], timeout=5)
    message = str(info.value)
    assert str(dest) in message and "NFLOW_DATA" in message and "127.0.0.1" in message
    assert os.listdir(dest) == []


# -------------------------------------------------------------------------------------------------------------
# Real MNIST (skipped without NFLOW_DATA)
# -------------------------------------------------------------------------------------------------------------
needs_mnist = pytest.mark.skipif(not os.environ.get("NFLOW_DATA"), reason="NFLOW_DATA is not set (real MNIST)")


@needs_mnist
def test_real_mnist_test_split():
    images, labels = load_mnist("test", download=False, verify=True)
    assert images.shape == (10000, 1, 28, 28) and images.dtype == np.uint8 and labels.dtype == np.uint8
    # Facts about MNIST known independently of this reader: the first test labels and the class counts.
    np.testing.assert_array_equal(labels[:8], [7, 2, 1, 0, 4, 1, 4, 9])
    np.testing.assert_array_equal(np.bincount(labels), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
    assert images.min() == 0 and images.max() == 255


@needs_mnist
def test_real_mnist_train_split():
    images, labels = load_mnist("train", download=False, verify=True)
    assert images.shape == (60000, 1, 28, 28)
    np.testing.assert_array_equal(labels[:8], [5, 0, 4, 1, 9, 2, 1, 3])
    np.testing.assert_array_equal(np.bincount(labels), [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949])
    # The mean and std of the training pixels, the (0.1307, 0.3081) everyone normalises MNIST with.
    x = images.astype(np.float32)
    mean = x.mean(dtype=np.float64) / 255
    std = math.sqrt((x * x).mean(dtype=np.float64) / 255**2 - mean**2)
    assert abs(mean - 0.1307) < 5e-4 and abs(std - 0.3081) < 5e-4


# -------------------------------------------------------------------------------------------------------------
# Dequantization
# -------------------------------------------------------------------------------------------------------------
def test_dequantize_stays_in_each_pixels_bin_and_below_one(rng):
    pixels = rng.integers(0, 256, size=(64, 1, 28, 28)).astype(np.uint8)
    x = dequantize(pixels, np.random.default_rng(0))
    assert x.dtype == np.float32 and x.shape == pixels.shape
    assert x.min() >= 0.0 and x.max() < 1.0
    np.testing.assert_array_equal(np.floor(x.astype(np.float64) * 256), pixels)
    u = x.astype(np.float64) * 256 - pixels  # the noise itself: U[0, 1), mean 1/2, variance 1/12
    assert abs(u.mean() - 0.5) < 0.01 and abs(u.var() - 1 / 12) < 0.005


class AlmostOne:
    """A stand-in Generator whose every uniform draw is the largest double below 1."""

    def random(self, shape, dtype):
        return np.full(shape, np.nextafter(1.0, 0.0), dtype=dtype)


def test_dequantize_never_rounds_up_into_the_next_bin():
    pixels = np.arange(256, dtype=np.uint8)
    x = dequantize(pixels, AlmostOne())
    assert x.max() < 1.0
    np.testing.assert_array_equal(np.floor(x.astype(np.float64) * 256), pixels)


def test_dequantize_is_a_function_of_the_generator_state():
    pixels = np.full((4, 5), 7, np.uint8)
    a = dequantize(pixels, np.random.default_rng(11))
    b = dequantize(pixels, np.random.default_rng(11))
    c = dequantize(pixels, np.random.default_rng(12))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_dequantize_refuses_floats_and_out_of_range_values():
    with pytest.raises(TypeError):
        dequantize(np.zeros(3, np.float32), np.random.default_rng(0))
    with pytest.raises(ValueError):
        dequantize(np.array([0, 16]), np.random.default_rng(0), n_bins=16)


def test_quantize_maps_unit_interval_to_bytes():
    np.testing.assert_array_equal(quantize(np.array([0.0, 1 / 256, 0.5, 0.999, 1.0, -0.2, 1.7, np.nan])),
                                  [0, 1, 128, 255, 255, 0, 255, 0])



def test_to_continuous_dequantizes_pixels_and_casts_points():
    pixels, points = np.full((2, 3), 7, np.uint8), np.array([[0.25, -1.5]])
    np.testing.assert_array_equal(to_continuous(pixels, np.random.default_rng(5), 256, np.float32),
                                  dequantize(pixels, np.random.default_rng(5)))
    out = to_continuous(points, np.random.default_rng(5), 1, np.float32)
    assert out.dtype == np.float32 and np.array_equal(out, points)
    assert default_n_bins(pixels) == 256 and default_n_bins(points) == 1

# -------------------------------------------------------------------------------------------------------------
# Toy densities
# -------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(DENSITIES))
def test_toy_densities_are_standardised(name):
    x = sample_toy(name, 40000, np.random.default_rng(0))
    assert x.shape == (40000, 2) and x.dtype == np.float32
    # The standard error of a mean of 40 000 unit-variance draws is 0.005: these bounds are 8 of them.
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=0.04)
    np.testing.assert_allclose(x.std(axis=0), 1.0, atol=0.04)


def test_toy_densities_are_reproducible_and_reject_unknown_names():
    a = sample_toy("moons", 10, np.random.default_rng(5))
    np.testing.assert_array_equal(a, sample_toy("moons", 10, np.random.default_rng(5)))
    with pytest.raises(ValueError, match="checkerboard"):
        sample_toy("spiral", 10, np.random.default_rng(0))


def test_checkerboard_points_lie_on_the_black_squares():
    x = sample_toy("checkerboard", 5000, np.random.default_rng(1)).astype(np.float64) * math.sqrt(4 / 3)
    assert np.all(np.abs(x) <= 2.0)
    column, row = np.floor(x[:, 0] + 2), np.floor(x[:, 1] + 2)
    assert np.all((column + row) % 2 == 0)


def test_rings_have_four_radii_and_eight_gaussians_eight_angles():
    x = sample_toy("rings", 5000, np.random.default_rng(2)).astype(np.float64)
    r = np.hypot(x[:, 0], x[:, 1]) * math.sqrt((100 / 10 + 0.01) / 2)  # back to the unscaled radii 1..4
    nearest = np.rint(r)
    assert set(np.unique(nearest)) == {1.0, 2.0, 3.0, 4.0} and np.abs(r - nearest).max() < 0.5
    y = sample_toy("8gaussians", 5000, np.random.default_rng(3)).astype(np.float64)
    angle = np.degrees(np.arctan2(y[:, 1], y[:, 0])) % 360
    off = np.abs((angle + 22.5) % 45 - 22.5)  # distance to the nearest multiple of 45°
    assert np.median(off) < 5


def test_grid_points_run_row_major_from_the_top_left():
    g = grid_points(4, limit=2.0)
    assert g.shape == (16, 2)
    np.testing.assert_allclose(g[0], [-1.5, 1.5])
    np.testing.assert_allclose(g[3], [1.5, 1.5])
    np.testing.assert_allclose(g[-1], [1.5, -1.5])


# -------------------------------------------------------------------------------------------------------------
# Batches
# -------------------------------------------------------------------------------------------------------------
def test_each_epoch_is_a_permutation_and_epochs_differ():
    s = BatchSampler(103, 10, seed=4)
    assert s.steps_per_epoch == 10
    epoch0 = np.concatenate([s.indices(i) for i in range(10)])
    epoch1 = np.concatenate([s.indices(i) for i in range(10, 20)])
    assert len(set(epoch0.tolist())) == 100 and epoch0.max() < 103
    assert len(set(epoch1.tolist())) == 100
    assert not np.array_equal(epoch0, epoch1)
    assert all(len(s.indices(i)) == 10 for i in range(30))


def test_batches_depend_only_on_seed_and_step():
    a, b = BatchSampler(50, 8, seed=1), BatchSampler(50, 8, seed=1)
    forward = [a.indices(i).tolist() for i in range(20)]
    backward = [b.indices(i).tolist() for i in reversed(range(20))][::-1]  # a different access order
    assert forward == backward
    assert forward != [BatchSampler(50, 8, seed=2).indices(i).tolist() for i in range(20)]


def test_iteration_resumes_at_any_step():
    data = np.arange(30) * 10
    full = [(step, batch.tolist()) for step, batch in iterate_batches(data, 4, seed=9, stop_step=17)]
    resumed = [(step, batch.tolist()) for step, batch in iterate_batches(data, 4, seed=9, start_step=11, stop_step=17)]
    assert resumed == full[11:]


def test_unshuffled_sampler_keeps_order_and_can_keep_the_last_partial_batch():
    s = BatchSampler(10, 4, seed=0, shuffle=False, drop_last=False)
    assert [s.indices(i).tolist() for i in range(4)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9], [0, 1, 2, 3]]
    with pytest.raises(ValueError):
        BatchSampler(3, 4, seed=0)
    with pytest.raises(ValueError):
        BatchSampler(10, 0, seed=0)


def test_each_part_of_the_noise_is_the_global_draws_slice_and_the_generator_ends_in_step():
    """A distributed run's rank r of N draws only its part of the global batch's noise (skipping the rest with
    the bit generator's advance), yet gets exactly that slice of one draw for the whole batch."""
    from nflow.data.dequantize import uniform_part
    whole_rng = np.random.default_rng(np.random.SeedSequence(7, spawn_key=(1,)))
    whole = whole_rng.random((6, 2, 3))
    for count in (1, 2, 3):
        for index in range(count):
            rng = np.random.default_rng(np.random.SeedSequence(7, spawn_key=(1,)))
            part = uniform_part(rng, (6 // count, 2, 3), (index, count))
            rows = 6 // count
            np.testing.assert_array_equal(part, whole[index * rows:(index + 1) * rows])
            assert rng.bit_generator.state == whole_rng.bit_generator.state
