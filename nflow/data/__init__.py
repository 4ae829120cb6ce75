"""Data: MNIST from its IDX files, 2-D toy densities, dequantization, and resumable shuffled batches."""
from nflow.data.batches import BatchSampler, iterate_batches
from nflow.data.dequantize import dequantize, quantize
from nflow.data.idx import IDXError, parse_idx, read_idx
from nflow.data.mnist import MNISTError, MNISTNotFoundError, download_mnist, load_mnist, resolve_data_dir
from nflow.data.toy import DENSITIES, checkerboard, eight_gaussians, grid_points, rings, sample_toy, two_moons

__all__ = [
    "BatchSampler", "iterate_batches", "dequantize", "quantize",
    "IDXError", "parse_idx", "read_idx",
    "MNISTError", "MNISTNotFoundError", "download_mnist", "load_mnist", "resolve_data_dir",
    "DENSITIES", "sample_toy", "two_moons", "eight_gaussians", "checkerboard", "rings", "grid_points",
]
