"""Turn a run configuration (a JSON dict saved in every checkpoint) into a model and its data.

A run configuration: ``{"model": "glow"|"realnvp"|"nice"|"maf"|"iaf", "model_args": {...}, "data": a spec,
"input_shape": [C, H, W] or [2], "image_size": ..., "grey": ..., "seed": ..., "limit": ..., "dtype": "float32"}``,
where the data spec is a 2-D toy density ("moons", ...) or an image source of :func:`nflow.data.load_images`
("mnist", "cifar10", "idx", "idx:DIR", "npz:PATH", "npy:PATH", "folder:DIR"). The model and its data are
rebuilt from it exactly, so a checkpoint is enough to evaluate, sample or resume.
"""
import numpy as np

from nflow.data import DENSITIES, IMAGE_SOURCES, is_image_spec, load_images, sample_toy
from nflow.data.mnist import IMAGE_SIZE
from nflow.models import IAF, MAF, NICE, Glow, RealNVP

MODELS = {"glow": Glow, "realnvp": RealNVP, "nice": NICE, "maf": MAF, "iaf": IAF}
TOY_DATA = tuple(sorted(DENSITIES))
DATA_FORMS = tuple(IMAGE_SOURCES) + TOY_DATA   # what --data accepts, for help and messages
# Run configurations written before "input_shape" was stored (nflow 0.2.0 on 2026-12-02) held MNIST or a toy.
MNIST_SHAPE = (1, IMAGE_SIZE, IMAGE_SIZE)
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
    # MAF / IAF: MADEs of `depth` hidden layers of `hidden` units; on MNIST the MAF paper's 1024-unit MADEs with
    # batch norm between layers and λ = 1e-6 logit preprocessing (the models' defaults: order reversed per layer).
    ("maf", "toy"): dict(layers=5, hidden=64, depth=2),
    ("iaf", "toy"): dict(layers=5, hidden=64, depth=2),
    ("maf", "image"): dict(layers=5, hidden=1024, depth=1, batch_norm=True),
    ("iaf", "image"): dict(layers=5, hidden=1024, depth=1, batch_norm=True),
}


def data_kind(data):
    return "image" if is_image_spec(data) else "toy"


def check_data_spec(data):
    """``data`` unchanged if it names a toy density or an image source; ValueError listing the forms otherwise."""
    if data in DENSITIES or is_image_spec(data):
        return data
    raise ValueError(f"unknown data {data!r}; expected a 2-D toy density ({', '.join(TOY_DATA)}) or an image "
                     f"source ({', '.join(IMAGE_SOURCES)})")


def default_model_args(model, data):
    key = (model, data_kind(data))
    if key not in DEFAULT_MODEL_ARGS:
        raise ValueError(f"model {model!r} does not take {data_kind(data)} data ({data!r}); "
                         f"Glow needs images (--data mnist, cifar10, idx, npz:PATH, folder:DIR, ...)")
    return dict(DEFAULT_MODEL_ARGS[key])


def build_model(run):
    """The model a run configuration describes, freshly initialised (load a state dict into it)."""
    default_shape = MNIST_SHAPE if data_kind(run["data"]) == "image" else TOY_SHAPE
    shape = tuple(run.get("input_shape") or default_shape)
    return MODELS[run["model"]](input_shape=shape, dtype=np.dtype(run.get("dtype", "float32")), **run["model_args"])


def load_data(run, split, data_dir=None, limit=None):
    """Images (N, C, H, W) (uint8, or float32 in [0, 1] from a float array file) or float32 points (N, 2) for
    ``split`` ("train" or "test")."""
    return load_labelled_data(run, split, data_dir, limit)[0]


def load_labelled_data(run, split, data_dir=None, limit=None):
    """(examples as :func:`load_data` gives them, their int64 labels (N,) or None where the data has none)."""
    if data_kind(run["data"]) == "image":
        found = load_images(run["data"], split, data_dir, image_size=run.get("image_size"), grey=run.get("grey"))
        images, labels = found.images, found.labels
    else:
        n = TOY_TRAIN_SIZE if split == "train" else TOY_TEST_SIZE
        seed = run["seed"] + (TOY_TEST_SEED_OFFSET if split == "test" else 0)
        images, labels = sample_toy(run["data"], n, np.random.default_rng(seed)), None
    if limit:
        images, labels = images[:limit], None if labels is None else labels[:limit]
    return images, labels


def num_classes(run):
    """The number of classes of a class-conditional run's model, None for an unconditional one."""
    return run["model_args"].get("num_classes")
