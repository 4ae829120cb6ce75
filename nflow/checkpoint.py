"""Checkpoints: everything needed to continue a training run exactly, in one NumPy ``.npz`` file.

Layout of the archive (every entry a plain array, so it loads with ``allow_pickle=False``: a checkpoint
from a stranger cannot run code on your machine):

=====================  ===============================================================================
``format_version``     int64 scalar, :data:`FORMAT_VERSION`; bumped when the layout changes
``step``               int64 scalar, the number of training steps completed
``model/<name>``       one entry per array of the model's ``state_dict()``
``optim/<name>``       one entry per array of the optimizer's ``state_dict()``
``rng_state``          uint8 array: UTF-8 JSON of the random generators' states
                       (``{"data": Generator.bit_generator.state, ...}``)
``config``             uint8 array: UTF-8 JSON of the full run configuration
``extra``              uint8 array: UTF-8 JSON of anything else the trainer keeps (counters, timings)
``manifest``           uint8 array: UTF-8 JSON ``{"model": [names], "optim": [names]}``
=====================  ===============================================================================

The file is written with :func:`nflow.atomic.atomic_write`, so a crash mid-save leaves the previous
checkpoint in place. Each zip member carries a CRC-32 that NumPy's reader checks, so damaged data is
detected on load; the CRC does not cover the members' names, so the manifest lists them and a load checks
that exactly those arrived. Every way a load can fail is reported as one :class:`CheckpointError` naming the
file.
"""
import json
import os
import struct
import zipfile
import zlib
from dataclasses import dataclass, field

import numpy as np

from nflow.atomic import atomic_write
from nflow.backend import to_numpy
from nflow.errors import NflowError

FORMAT_VERSION = 2
# What changed at each version, for the message that refuses an older file.
FORMAT_CHANGES = {
    2: "nflow 0.2.0: the LU-parameterised 1x1 convolutions no longer keep the unused 'lower_mask' buffer",
}

KEY_VERSION = "format_version"
KEY_STEP = "step"
KEY_RNG = "rng_state"
KEY_CONFIG = "config"
KEY_EXTRA = "extra"
KEY_MANIFEST = "manifest"
MODEL_PREFIX = "model/"
OPTIM_PREFIX = "optim/"
REQUIRED_KEYS = (KEY_VERSION, KEY_STEP, KEY_RNG, KEY_CONFIG, KEY_EXTRA, KEY_MANIFEST)

# What reading a damaged archive can raise, from the zip layer (BadZipFile, zlib.error, struct.error, and
# NotImplementedError or RuntimeError when flag or method bits are hit: "compression method not supported",
# "file is encrypted"),
# NumPy's .npy header parser (ValueError, SyntaxError inside literal_eval surfaces as ValueError), a
# missing member (KeyError), a short read (EOFError, OSError), a corrupted shape that asks for an
# absurd allocation (MemoryError, OverflowError) and the JSON entries (UnicodeDecodeError, JSONDecodeError
# is a ValueError).
_READ_ERRORS = (OSError, EOFError, zipfile.BadZipFile, zlib.error, struct.error, NotImplementedError, RuntimeError,
                ValueError, KeyError, TypeError, UnicodeDecodeError, MemoryError, OverflowError)


class CheckpointError(NflowError):
    """A checkpoint could not be written or read; the message names the file and what went wrong."""


class NonFiniteStateError(CheckpointError):
    """Saving was refused because a state array holds NaN or inf (nothing was written)."""


@dataclass
class Checkpoint:
    """The contents of a checkpoint file, as host NumPy arrays and plain Python values."""

    model_state: dict
    optimizer_state: dict
    step: int
    rng_state: dict
    config: dict
    extra: dict = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    path: str = None


def _json_array(value, what, path):
    try:
        text = json.dumps(value, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path}: the {what} is not JSON-serialisable ({e})") from e
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def _from_json_array(array):
    return json.loads(np.asarray(array, dtype=np.uint8).tobytes().decode("utf-8"))


def _plain_arrays(state, prefix, what, path, require_finite):
    out = {}
    for name, value in state.items():
        if not isinstance(name, str) or not name:
            raise CheckpointError(f"checkpoint {path}: {what} key {name!r} is not a non-empty string")
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise CheckpointError(f"checkpoint {path}: {what} entry {name!r} has dtype {array.dtype}; only "
                                  "bool, integer and floating arrays are stored (no pickled objects)")
        if require_finite and array.dtype.kind == "f" and not np.isfinite(array).all():
            raise NonFiniteStateError(f"checkpoint {path}: refusing to save, {what} entry {name!r} holds NaN or inf "
                                  "(the run has diverged; the previous checkpoint is left as it was)")
        out[prefix + name] = array
    return out


def save_checkpoint(path, model_state, optimizer_state, step, rng_state, config, extra=None,
                    require_finite=True):
    """Write a checkpoint to ``path`` atomically (see the module docstring for the layout).

    ``model_state`` and ``optimizer_state`` are ``{name: array}`` (host or device arrays; moved to the host).
    ``rng_state``, ``config`` and ``extra`` must be JSON-serialisable (NaN and inf are refused).
    With ``require_finite`` (the default) a floating array holding NaN or inf is refused before anything is
    written (:class:`NonFiniteStateError`): a diverged run never overwrites its last good checkpoint.
    """
    path = os.fspath(path)
    model_state = {k: to_numpy(v) for k, v in model_state.items()}
    optimizer_state = {k: to_numpy(v) for k, v in optimizer_state.items()}
    arrays = {
        KEY_VERSION: np.array(FORMAT_VERSION, dtype=np.int64),
        KEY_STEP: np.array(int(step), dtype=np.int64),
        KEY_RNG: _json_array(rng_state, "RNG state", path),
        KEY_CONFIG: _json_array(config, "config", path),
        KEY_EXTRA: _json_array(extra or {}, "extra state", path),
    }
    arrays.update(_plain_arrays(model_state, MODEL_PREFIX, "model state", path, require_finite))
    arrays.update(_plain_arrays(optimizer_state, OPTIM_PREFIX, "optimizer state", path, require_finite))
    arrays[KEY_MANIFEST] = _json_array({"model": sorted(model_state), "optim": sorted(optimizer_state)},
                                       "manifest", path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CheckpointError(f"checkpoint {path}: directory {directory} does not exist")
    try:
        atomic_write(path, lambda f: np.savez(f, **arrays))
    except OSError as e:   # a full disk, a quota, a file system gone read-only: atomic_write kept the old file
        raise CheckpointError(f"checkpoint {path} could not be written ({e.strerror or e}); the previous "
                              "checkpoint there, if any, is unchanged") from e


def load_checkpoint(path):
    """Read a checkpoint written by :func:`save_checkpoint`; return a :class:`Checkpoint`.

    Raises :class:`CheckpointError` (naming ``path``) when the file is missing, truncated, corrupted, not a
    checkpoint, or written in another format version than :data:`FORMAT_VERSION`.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path}: no such file")
    try:
        # Open the file here rather than in np.load: when the zip layer rejects a damaged file, np.load
        # leaves a file it opened itself unclosed.
        with open(path, "rb") as f:
            archive = np.load(f, allow_pickle=False)
            if not hasattr(archive, "files"):
                raise CheckpointError(f"checkpoint {path}: a single .npy array, not an nflow checkpoint archive")
            with archive:
                # Reading every member in full makes the zip layer check each CRC-32.
                arrays = {name: archive[name] for name in archive.files}
        missing = [k for k in REQUIRED_KEYS if k not in arrays]
        if missing:
            raise CheckpointError(f"checkpoint {path}: not an nflow checkpoint, entries {missing} are missing "
                                  "(truncated, corrupted, or written by another program)")
        version = int(arrays[KEY_VERSION])
        if version > FORMAT_VERSION:
            raise CheckpointError(f"checkpoint {path}: format version {version} is newer than this nflow reads "
                                  f"({FORMAT_VERSION}); upgrade nflow")
        if version < FORMAT_VERSION:
            changes = "; ".join(FORMAT_CHANGES.get(v, f"format {v}") for v in range(version + 1, FORMAT_VERSION + 1))
            raise CheckpointError(f"checkpoint {path}: format version {version} is older than this nflow reads "
                                  f"({FORMAT_VERSION}; since then, {changes}); evaluate or sample from it with "
                                  "the nflow release that wrote it, or train again")
        model_state = {k[len(MODEL_PREFIX):]: v for k, v in arrays.items() if k.startswith(MODEL_PREFIX)}
        optimizer_state = {k[len(OPTIM_PREFIX):]: v for k, v in arrays.items() if k.startswith(OPTIM_PREFIX)}
        manifest = _from_json_array(arrays[KEY_MANIFEST])
        if sorted(model_state) != manifest["model"] or sorted(optimizer_state) != manifest["optim"]:
            raise CheckpointError(f"checkpoint {path} is corrupted: its array names do not match its manifest "
                                  "(a damaged zip directory); resume from an earlier checkpoint")
        return Checkpoint(
            model_state=model_state,
            optimizer_state=optimizer_state,
            step=int(arrays[KEY_STEP]),
            rng_state=_from_json_array(arrays[KEY_RNG]),
            config=_from_json_array(arrays[KEY_CONFIG]),
            extra=_from_json_array(arrays[KEY_EXTRA]),
            format_version=version,
            path=path,
        )
    except CheckpointError:
        raise
    except _READ_ERRORS as e:
        raise CheckpointError(f"checkpoint {path} is unreadable, probably truncated or corrupted "
                              f"({type(e).__name__}: {e}); resume from an earlier checkpoint") from e


def restore_model(model, checkpoint):
    """Load ``checkpoint``'s model state into ``model`` (a :class:`Checkpoint`); return the model.

    Names and shapes must match the model, and the values must be valid: finite, and for the layers whose
    buffers have a structure (a permutation, signs of ±1, an ActNorm flag, variances ≥ 0) that structure. Any
    mismatch is a :class:`CheckpointError` naming the file and the entry, raised before the model is used.
    """
    try:
        model.load_state_dict(checkpoint.model_state)
    except (KeyError, ValueError) as e:
        message = e.args[0] if e.args else str(e)
        raise CheckpointError(f"checkpoint {checkpoint.path}: its model state cannot be loaded into "
                              f"{type(model).__name__}: {message}") from e
    return model
