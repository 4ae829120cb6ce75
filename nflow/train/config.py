"""The settings of a training run, one dataclass, stored in every checkpoint as JSON, and their defaults.

This file is the one source of the training defaults: :class:`TrainConfig`'s fields hold them, and
:data:`DATA_KIND_SETTINGS` says where a run on toy points or on images starts from something else
(:func:`default_settings`, which the command line builds its runs from).
"""
from dataclasses import MISSING, asdict, dataclass, fields

# Stop after this many consecutive steps whose loss or gradient norm is NaN or inf: one bad batch is worth
# skipping, twenty in a row mean the parameters or the learning rate are broken and waiting will not help.
MAX_CONSECUTIVE_SKIPS = 20
DEFAULT_CHECKPOINT_EVERY = 1000
# Clip the global gradient norm to this by default: large enough never to bind in healthy training of the
# flows here, small enough to stop one outlier batch from throwing the parameters far (Glow clips at 50-100).
DEFAULT_MAX_GRAD_NORM = 100.0

# Settings that determine the sequence of parameters; a resumed run must use the same ones to continue
# exactly. (``steps`` may grow, intervals and display may change.)
TRAJECTORY_FIELDS = ("batch_size", "lr", "warmup_steps", "max_grad_norm", "betas", "eps", "seed", "n_bins")


@dataclass
class TrainConfig:
    """What :class:`nflow.train.Trainer` does.

    steps: total number of optimisation steps of the run (a resumed run continues up to this number).
    batch_size: examples per step on each rank (one rank unless distributed: the global batch of N ranks is
    N · batch_size, see :class:`~nflow.train.Trainer`). lr: Adam's peak learning rate, reached after
    ``warmup_steps`` steps of a linear ramp (lr · k / warmup_steps at step k). max_grad_norm: clip the global
    gradient norm to this (None: no clipping). betas, eps: Adam's. seed: batch order and dequantization noise.
    checkpoint_every: save every this many steps (and always at the end; 0: only at the end).
    sample_every: call ``on_sample(step)`` every this many steps (0: never).
    eval_every: call ``on_evaluate(step)`` (the held-out likelihood) every this many steps (0: never).
    max_consecutive_skips: stop after this many consecutive non-finite steps.
    n_bins: quantisation levels of the data for bits/dim (None: 256 for uint8 data, 1 for float data).
    progress: draw the progress line on stderr.
    reversible: back-propagate with memory-free reversible backprop (:mod:`nflow.reversible`): the forward
    pass keeps no activations and each layer's input is rebuilt from its output.
    time_limit: stop (with a checkpoint, status "time limit") once this many seconds of this ``fit`` call
    have passed, even if ``steps`` is not reached (None: no limit).
    """

    steps: int
    batch_size: int = 64
    lr: float = 1e-3
    warmup_steps: int = 0
    max_grad_norm: float = DEFAULT_MAX_GRAD_NORM
    betas: tuple = (0.9, 0.999)
    eps: float = 1e-8
    seed: int = 0
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY
    sample_every: int = 0
    eval_every: int = 0
    max_consecutive_skips: int = MAX_CONSECUTIVE_SKIPS
    n_bins: int = None
    progress: bool = True
    reversible: bool = False
    time_limit: float = None

    def __post_init__(self):
        self.betas = tuple(self.betas)
        problems = []
        for name in ("steps", "batch_size", "max_consecutive_skips"):
            if int(getattr(self, name)) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup_steps", "checkpoint_every", "sample_every", "eval_every"):
            if int(getattr(self, name)) < 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.lr > 0:
            problems.append(f"lr must be positive, got {self.lr}")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            problems.append(f"max_grad_norm must be positive or None, got {self.max_grad_norm}")
        if self.time_limit is not None and not self.time_limit > 0:
            problems.append(f"time_limit must be positive or None, got {self.time_limit}")
        if self.n_bins is not None and self.n_bins < 1:
            problems.append(f"n_bins must be >= 1 or None, got {self.n_bins}")
        if problems:
            raise ValueError("TrainConfig: " + "; ".join(problems))

    def to_dict(self):
        out = asdict(self)
        out["betas"] = list(self.betas)
        return out

    @classmethod
    def from_dict(cls, d):
        """Build from a dict such as ``checkpoint.config["train"]``; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"TrainConfig.from_dict: unknown settings {unknown}")
        return cls(**d)

    def trajectory_differences(self, other):
        """Names of the TRAJECTORY_FIELDS on which ``self`` and ``other`` (a TrainConfig or its dict) differ."""
        other = other.to_dict() if isinstance(other, TrainConfig) else dict(other)
        mine = self.to_dict()

        def plain(value):  # JSON turns tuples into lists
            return list(value) if isinstance(value, tuple) else value

        return [k for k in TRAJECTORY_FIELDS if plain(mine.get(k)) != plain(other.get(k))]


# What a run on each kind of data changes from TrainConfig's defaults (the command line's starting point; its
# flags override any of these). Toy points: the one-command demo, `nflow train` in about a minute on 2 cores,
# with large batches of cheap 2-D points. Images: a short Glow run, with sample sheets as it goes.
DATA_KIND_SETTINGS = {
    "toy": dict(steps=3000, batch_size=256, warmup_steps=100, checkpoint_every=500, eval_every=500),
    "image": dict(steps=1000, warmup_steps=200, checkpoint_every=200, sample_every=200, eval_every=200),
}


def default_settings(kind):
    """The keyword arguments of a :class:`TrainConfig` for a run on ``kind`` of data ("toy" or "image"):
    every field's default, with :data:`DATA_KIND_SETTINGS` on top."""
    defaults = {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}
    return {**defaults, **DATA_KIND_SETTINGS[kind]}
