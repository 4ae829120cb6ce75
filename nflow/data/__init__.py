"""Data: image sets from one spec (MNIST, CIFAR-10, IDX files, NumPy arrays, image folders), 2-D toy densities,
dequantization, and resumable shuffled batches."""
from nflow.data.batches import BatchSampler, iterate_batches
from nflow.data.cifar10 import download_cifar10, load_cifar10
from nflow.data.dequantize import dequantize, quantize
from nflow.data.errors import DataError, DataNotFoundError
from nflow.data.idx import IDXError, parse_idx, read_idx
from nflow.data.image_set import ImageSet
from nflow.data.mnist import MNISTError, MNISTNotFoundError, download_mnist, load_mnist, resolve_data_dir
from nflow.data.sources import IMAGE_SOURCES, is_image_spec, load_images, parse_image_spec
from nflow.data.toy import DENSITIES, checkerboard, eight_gaussians, grid_points, rings, sample_toy, two_moons

__all__ = [
    "BatchSampler", "iterate_batches", "dequantize", "quantize",
    "IDXError", "parse_idx", "read_idx",
    "MNISTError", "MNISTNotFoundError", "download_mnist", "load_mnist", "resolve_data_dir",
    "ImageSet", "IMAGE_SOURCES", "parse_image_spec", "is_image_spec", "load_images",
    "DataError", "DataNotFoundError", "load_cifar10", "download_cifar10",
    "DENSITIES", "sample_toy", "two_moons", "eight_gaussians", "checkerboard", "rings", "grid_points",
]
