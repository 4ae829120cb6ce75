"""Sampling never hands back NaN or inf silently: it warns with the count."""
import numpy as np
import pytest

import nflow
from nflow.models import Glow


def test_overflowing_samples_are_reported():
    nflow.seed(0)
    model = Glow((1, 8, 8), levels=2, steps=1, hidden=4)
    top = model.levels[-1].layers[-1]  # the learned top prior: z = μ + exp(log σ)·ε
    top.log_std.data[...] = 100.0      # exp(100) overflows float32
    with pytest.warns(RuntimeWarning, match=r"4 of 4 samples hold NaN or inf"):
        x = model.sample(4, temperature=1.0, seed=0)
    assert not np.isfinite(x).all()


def test_healthy_samples_do_not_warn():
    nflow.seed(0)
    model = Glow((1, 8, 8), levels=2, steps=1, hidden=4)
    x = model.sample(4, temperature=0.7, seed=0)  # filterwarnings=error: any warning fails this test
    assert np.isfinite(x).all()
