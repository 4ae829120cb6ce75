"""Shared test settings: hypothesis profiles, the backend fixture and the gpu marker's skip."""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import nflow
from nflow.backend import cupy_available, numba_available

# CI runs on 2 cores: keep example counts per test small and deadlines off (Numba compiles on first call).
COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
# "ci", the default (the README's test command and .ci/run): derandomised, so every run draws the same examples
# and a red run means a bug, reproducible by running it again; no example database, so nothing replays.
settings.register_profile("ci", derandomize=True, **COMMON)
# "random", on demand (NFLOW_HYPOTHESIS_PROFILE=random python3 -m pytest tests): fresh examples every run, to
# look further; a failure prints the seed to reproduce it (@seed / --hypothesis-seed).
settings.register_profile("random", derandomize=False, print_blob=True, **COMMON)
settings.load_profile(os.environ.get("NFLOW_HYPOTHESIS_PROFILE", "ci"))

AVAILABLE_BACKENDS = ["numpy"] + (["numba"] if numba_available() else []) + (["cupy"] if cupy_available() else [])


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs CuPy and a CUDA device")
    for item in items:
        if "gpu" in item.keywords and not cupy_available():
            item.add_marker(skip_gpu)


@pytest.fixture(params=AVAILABLE_BACKENDS)
def backend_name(request):
    """Runs a test once per available backend, with that backend selected."""
    with nflow.backend(request.param):
        yield request.param


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
