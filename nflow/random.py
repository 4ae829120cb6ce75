"""nflow's random numbers: one NumPy Generator, reseeded by :func:`seed`, so the same seed gives the same run.

Layers draw their initial weights from :func:`default_rng` unless given an ``rng`` of their own. Random
arrays are drawn on the host and moved to the backend's device, so a seed gives the same numbers on every
backend.
"""
import numpy as np

_rng = np.random.default_rng(0)


def seed(value):
    """Reset nflow's generator: every later initialisation and sample follows from ``value``."""
    global _rng
    _rng = np.random.default_rng(value)


def default_rng():
    return _rng


def get_state():
    """The generator's state, a JSON-serialisable dict (for checkpoints)."""
    return _rng.bit_generator.state


def set_state(state):
    _rng.bit_generator.state = state
