"""Images: the PNG writer checked by an independent decoder written here (signature, chunk CRCs, IHDR, all five
row filters), PIL as a second opinion when it is installed, grids and the heat map. The matplotlib plots are
tested in test_plots.py."""
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nflow.data.toy import grid_points
from nflow.image import encode_png, histogram_2d, make_grid, save_grid, to_uint8, write_png


# -------------------------------------------------------------------------------------------------------------
# A minimal PNG decoder, written from the specification (W3C PNG, 2nd ed., §5 and §9), for 8-bit grey/RGB.
# -------------------------------------------------------------------------------------------------------------
def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def decode_png(data):
    """(pixels (H, W) or (H, W, 3) uint8, IHDR dict, list of chunk types); asserts every structural rule."""
    assert data[:8] == bytes([137, 80, 78, 71, 13, 10, 26, 10]), "bad PNG signature"
    pos, chunks, idat = 8, [], b""
    ihdr = None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body), f"bad CRC in chunk {kind}"
        chunks.append(kind)
        if kind == b"IHDR":
            w, h, depth, color, comp, filt, interlace = struct.unpack(">IIBBBBB", body)
            ihdr = dict(width=w, height=h, depth=depth, color=color, compression=comp, filter=filt,
                        interlace=interlace)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert pos == len(data), "bytes after the last chunk"
    assert chunks[0] == b"IHDR" and chunks[-1] == b"IEND" and b"IDAT" in chunks
    assert ihdr["depth"] == 8 and ihdr["compression"] == 0 and ihdr["filter"] == 0 and ihdr["interlace"] == 0
    channels = {0: 1, 2: 3}[ihdr["color"]]
    raw = zlib.decompress(idat)
    stride = ihdr["width"] * channels
    assert len(raw) == ihdr["height"] * (stride + 1), "wrong amount of image data"
    rows, prev = [], [0] * stride
    for r in range(ihdr["height"]):
        line = raw[r * (stride + 1):(r + 1) * (stride + 1)]
        ftype, cur = line[0], list(line[1:])
        for i in range(stride):
            a = cur[i - channels] if i >= channels else 0
            b, c = prev[i], (prev[i - channels] if i >= channels else 0)
            predictor = {0: 0, 1: a, 2: b, 3: (a + b) // 2, 4: paeth(a, b, c)}[ftype]
            cur[i] = (cur[i] + predictor) & 0xFF
        rows.append(cur)
        prev = cur
    pixels = np.array(rows, dtype=np.uint8).reshape(ihdr["height"], ihdr["width"], channels)
    return (pixels[:, :, 0] if channels == 1 else pixels), ihdr, chunks


@settings(max_examples=25)
@given(h=st.integers(1, 19), w=st.integers(1, 19), rgb=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_png_round_trips_through_an_independent_decoder(h, w, rgb, seed):
    shape = (h, w, 3) if rgb else (h, w)
    image = np.random.default_rng(seed).integers(0, 256, size=shape).astype(np.uint8)
    pixels, ihdr, chunks = decode_png(encode_png(image))
    assert ihdr["width"] == w and ihdr["height"] == h and ihdr["color"] == (2 if rgb else 0)
    assert chunks == [b"IHDR", b"IDAT", b"IEND"]
    np.testing.assert_array_equal(pixels, image)


def test_png_writes_a_file_and_accepts_a_single_channel_axis(tmp_path):
    image = np.arange(12, dtype=np.uint8).reshape(3, 4, 1) * 20
    write_png(tmp_path / "a.png", image)
    pixels, ihdr, _ = decode_png((tmp_path / "a.png").read_bytes())
    assert ihdr["color"] == 0
    np.testing.assert_array_equal(pixels, image[:, :, 0])


def test_float_images_are_quantised_as_floor_256x():
    image = np.array([[0.0, 1 / 256, 0.5, 0.999, 1.0, 1.5, -0.5]])
    pixels, _, _ = decode_png(encode_png(image))
    np.testing.assert_array_equal(pixels, [[0, 1, 128, 255, 255, 255, 0]])
    np.testing.assert_array_equal(to_uint8(np.array([7], np.uint8)), [7])


def test_png_rejects_shapes_and_dtypes_it_cannot_store():
    for bad in (np.zeros((2, 2, 2)), np.zeros((2, 2, 4)), np.zeros(5), np.zeros((0, 3))):
        with pytest.raises(ValueError):
            encode_png(bad)
    with pytest.raises(TypeError):
        encode_png(np.zeros((2, 2), dtype=np.int32))


def test_pil_reads_our_pngs_the_same_way(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    for shape in ((5, 7), (6, 3, 3)):
        image = rng.integers(0, 256, size=shape).astype(np.uint8)
        write_png(tmp_path / "x.png", image)
        with Image.open(tmp_path / "x.png") as im:
            np.testing.assert_array_equal(np.asarray(im), image)


# -------------------------------------------------------------------------------------------------------------
# Grids
# -------------------------------------------------------------------------------------------------------------
def test_make_grid_places_tiles_with_padding():
    images = np.random.default_rng(0).random((10, 1, 3, 3))
    grid = make_grid(images, nrow=4, padding=2, pad_value=0.5)
    # 3 rows of 4 columns: 3·(3+2)+2 = 17 high, 4·(3+2)+2 = 22 wide.
    assert grid.shape == (1, 17, 22)
    np.testing.assert_array_equal(grid[:, 2:5, 7:10], images[1])  # row 0, column 1
    np.testing.assert_array_equal(grid[:, 12:15, 7:10], images[9])  # row 2, column 1
    assert np.all(grid[:, 12:15, 12:] == 0.5)  # the empty cells of the last row
    assert np.all(grid[:, :2, :] == 0.5) and np.all(grid[:, :, 5:7] == 0.5)


def test_make_grid_with_fewer_images_than_a_row_and_rgb():
    images = np.random.default_rng(1).integers(0, 256, (2, 3, 4, 5)).astype(np.uint8)
    grid = make_grid(images, nrow=8, padding=1, pad_value=1.0)
    assert grid.shape == (3, 6, 13) and grid.dtype == np.uint8
    assert np.all(grid[:, 0, :] == 255)
    np.testing.assert_array_equal(grid[:, 1:5, 7:12], images[1])


def test_save_grid_writes_a_decodable_rgb_png(tmp_path):
    images = np.random.default_rng(2).random((4, 3, 2, 2))
    save_grid(tmp_path / "g.png", images, nrow=2, padding=1, scale=2)
    pixels, ihdr, _ = decode_png((tmp_path / "g.png").read_bytes())
    assert pixels.shape == (2 * 7, 2 * 7, 3) and ihdr["color"] == 2
    expected = np.floor(images[0].transpose(1, 2, 0) * 256).astype(np.uint8)
    np.testing.assert_array_equal(pixels[2:6:2, 2:6:2], expected)


# -------------------------------------------------------------------------------------------------------------
# The data histogram of the density picture
# -------------------------------------------------------------------------------------------------------------
def test_histogram_2d_puts_y_up_and_x_right_like_grid_points():
    # Two points in the top-right cell, one in the bottom-left, none elsewhere; the point off [-1, 1]² is dropped.
    points = np.array([[0.9, 0.9], [0.8, 0.7], [-0.9, -0.9], [5.0, 0.0]])
    counts = histogram_2d(points, bins=2, limit=1.0)
    np.testing.assert_array_equal(counts, [[0, 2], [1, 0]])
    # the same layout as grid_points: cell (row, column) of the histogram holds grid point row * bins + column
    centres = grid_points(2, limit=1.0)
    np.testing.assert_array_equal(histogram_2d(centres, bins=2, limit=1.0), np.ones((2, 2)))
    np.testing.assert_array_equal(centres[1], [0.5, 0.5])  # row 0 is the top (y > 0), column 1 the right (x > 0)
