"""Turn a run configuration (a JSON dict saved in every checkpoint) into a model and its data.

A run configuration: ``{"model": "glow"|"realnvp"|"nice", "model_args": {...}, "data": "mnist"|"moons"|...,
"backend": ..., "dtype": "float32"}``. The model is rebuilt from it exactly, so a checkpoint is enough to
evaluate, sample or resume.
"""
import numpy as np

from nflow.data import DENSITIES, load_mnist, sample_toy
from nflow.data.mnist import IMAGE_SIZE
from nflow.models import NICE, Glow, RealNVP

MODELS = {"glow": Glow, "realnvp": RealNVP, "nice": NICE}
IMAGE_DATA = ("mnist",)
DATASETS = IMAGE_DATA + tuple(sorted(DENSITIES))
MNIST_SHAPE = (1, IMAGE_SIZE, IMAGE_SIZE)  # as load_mnist returns them: one grey channel
TOY_SHAPE = (2,)
TOY_TRAIN_SIZE = 50_000  # a fixed training set, so epochs mean something and resumption is exact
TOY_TEST_SIZE = 10_000
TOY_TEST_SEED_OFFSET = 10_000  # the test set's seed: the run's seed plus this, never the training draw

DEFAULT_MODEL = {"image": "glow", "toy": "realnvp"}  # per kind of data, when --model is not given
# Architectures per (model, kind of data); the command line overrides any of these. Written out in full, as
# they are stored in every checkpoint's run config. (The training settings' defaults are nflow.train.config's.)
DEFAULT_MODEL_ARGS = {
    ("glow", "image"): dict(levels=2, steps=8, hidden=256, lu=True, coupling="affine"),
    ("realnvp", "image"): dict(scales=2, hidden=64),
    ("nice", "image"): dict(couplings=4, hidden=1000, depth=5, prior="logistic"),
    ("realnvp", "toy"): dict(hidden=64, couplings=8, depth=2),
    ("nice", "toy"): dict(couplings=4, hidden=64, depth=3, prior="gaussian", input_range=None),
}


def data_kind(data):
    return "image" if data in IMAGE_DATA else "toy"


def default_model_args(model, data):
    key = (model, data_kind(data))
    if key not in DEFAULT_MODEL_ARGS:
        raise ValueError(f"model {model!r} does not take {data_kind(data)} data ({data!r}); "
                         f"Glow needs images (--data mnist)")
    return dict(DEFAULT_MODEL_ARGS[key])


def build_model(run):
    """The model a run configuration describes, freshly initialised (load a state dict into it)."""
    shape = MNIST_SHAPE if data_kind(run["data"]) == "image" else TOY_SHAPE
    return MODELS[run["model"]](input_shape=shape, dtype=np.dtype(run.get("dtype", "float32")), **run["model_args"])


def load_data(run, split, data_dir=None, limit=None):
    """uint8 images (N, 1, 28, 28) or float32 points (N, 2) for ``split`` ("train" or "test")."""
    if data_kind(run["data"]) == "image":
        images, _ = load_mnist(split, data_dir=data_dir)
    else:
        n = TOY_TRAIN_SIZE if split == "train" else TOY_TEST_SIZE
        seed = run["seed"] + (TOY_TEST_SEED_OFFSET if split == "test" else 0)
        images = sample_toy(run["data"], n, np.random.default_rng(seed))
    return images[:limit] if limit else images
