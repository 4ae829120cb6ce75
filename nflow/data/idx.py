"""The IDX file format (LeCun et al., the MNIST distribution), gzipped or not.

Layout, all integers big-endian:

    bytes 0-1   0x00 0x00            (the magic number's first half)
    byte  2     element type code    (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64)
    byte  3     number of dimensions n
    4 · n bytes the size of each dimension, uint32
    then        prod(sizes) elements, row-major

The reader checks the magic, the type code, and that the data is exactly as long as the header says, so a
truncated download or a file of another kind is reported as an :class:`IDXError` naming the file instead of
turning into a wrong-shaped array further on.
"""
import gzip
import os
import struct
import zlib

import numpy as np

from nflow.errors import NflowError

GZIP_MAGIC = b"\x1f\x8b"
IDX_HEADER_BYTES = 4
IDX_DIM_BYTES = 4
# Element type code -> big-endian NumPy dtype.
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class IDXError(NflowError, ValueError):
    """An IDX file is truncated, corrupted or not an IDX file; the message names the file."""


def decompress_if_gzip(raw, name="<bytes>"):
    """``raw`` gunzipped when it starts with the gzip magic, else ``raw`` itself."""
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as e:  # truncated stream, bad CRC or length, garbage
        raise IDXError(f"{name}: the gzip stream is truncated or corrupted ({type(e).__name__}: {e}); "
                       "delete the file and download it again") from e


def read_file_bytes(path):
    """The raw (decompressed) bytes of the file at ``path``."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        return decompress_if_gzip(f.read(), name=path)


def parse_idx(raw, name="<bytes>"):
    """Parse IDX bytes into a native-endian NumPy array (see the module docstring for the layout)."""
    if len(raw) < IDX_HEADER_BYTES:
        raise IDXError(f"{name}: {len(raw)} bytes, too short for an IDX header ({IDX_HEADER_BYTES} bytes)")
    zero0, zero1, type_code, ndim = raw[0], raw[1], raw[2], raw[3]
    if zero0 != 0 or zero1 != 0:
        raise IDXError(f"{name}: bad IDX magic number 0x{raw[:4].hex()} (must start with 0x0000); "
                       "not an IDX file, or a gzip file renamed without .gz that is damaged")
    if type_code not in IDX_DTYPES:
        raise IDXError(f"{name}: unknown IDX element type 0x{type_code:02x} (known: "
                       f"{', '.join(f'0x{c:02x}' for c in IDX_DTYPES)})")
    if ndim == 0:
        raise IDXError(f"{name}: IDX header declares 0 dimensions")
    data_start = IDX_HEADER_BYTES + IDX_DIM_BYTES * ndim
    if len(raw) < data_start:
        raise IDXError(f"{name}: truncated IDX header: {ndim} dimensions need {data_start} header bytes, "
                       f"the file has {len(raw)}")
    shape = struct.unpack(f">{ndim}I", raw[IDX_HEADER_BYTES:data_start])
    dtype = IDX_DTYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(raw) - data_start
    if actual != expected:
        what = "truncated" if actual < expected else "has trailing bytes"
        raise IDXError(f"{name}: IDX file {what}: header declares shape {shape} of {dtype.name} "
                       f"({expected} data bytes), the file holds {actual}")
    array = np.frombuffer(raw, dtype=dtype, count=expected // dtype.itemsize, offset=data_start)
    return array.reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(path):
    """Read an IDX file (``.gz`` or plain, detected from its first bytes) into a NumPy array."""
    path = os.fspath(path)
    return parse_idx(read_file_bytes(path), name=path)
