"""Bad arguments to the models are refused where they enter, with a sentence naming the argument (issue 16)."""
import numpy as np
import pytest

from nflow.models import IAF, MAF, NICE, Glow, RealNVP

SMALL_GLOW = dict(input_shape=(1, 8, 8), levels=1, steps=1, hidden=4)


@pytest.mark.parametrize("build,message", [
    (lambda: Glow((1, 8, 8), levels=0), r"Glow: levels must be an integer ≥ 1, got 0"),
    (lambda: Glow((1, 8, 8), levels=1, steps=0), r"Glow: steps must be an integer ≥ 1, got 0"),
    (lambda: Glow((1, 8, 8), levels=1, steps=1, hidden=2.5), r"Glow: hidden must be an integer ≥ 1, got 2.5"),
    (lambda: Glow((0, 8, 8), levels=1), r"Glow: input_shape's C, H and W must be an integer ≥ 1, got 0"),
    (lambda: RealNVP((1, 8, 8), scales=0), r"RealNVP: scales must be an integer ≥ 1, got 0"),
    (lambda: RealNVP((2,), couplings=True), r"RealNVP: couplings must be an integer ≥ 1, got True"),
    (lambda: RealNVP((2,), depth=-1), r"RealNVP: depth must be an integer ≥ 0, got -1"),
    (lambda: NICE((1, 4, 4), couplings=0), r"NICE: couplings must be an integer ≥ 1, got 0"),
    (lambda: NICE((1, 4, 4), hidden=0), r"NICE: hidden must be an integer ≥ 1, got 0"),
    (lambda: MAF(2, layers=0), r"MAF: layers must be an integer ≥ 1, got 0"),
    (lambda: MAF((2,), depth=0), r"MAF: depth must be an integer ≥ 1, got 0"),
    (lambda: IAF((2,), hidden=2.5), r"IAF: every hidden width must be an integer ≥ 1, got 2.5"),
    (lambda: MAF((2,), hidden=(64, 0)), r"MAF: every hidden width must be an integer ≥ 1, got 0"),
    (lambda: MAF((2,), hidden=()), r"MAF: hidden must hold at least one width"),
    (lambda: MAF((2,), hidden=(8, 8), depth=3), r"MAF: hidden=\(8, 8\) gives 2 hidden layers, but depth=3"),
    (lambda: MAF((2,), order="sideways"), r"MAF: order must be one of \('reverse', 'random', 'natural'\)"),
    (lambda: IAF((2, 3)), r"IAF: input_shape must be \(D,\) or \(C, H, W\), got \(2, 3\)"),
    (lambda: MAF((0,)), r"MAF: every axis of input_shape must be an integer ≥ 1, got 0"),
])
def test_architecture_arguments_are_checked(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_a_linear_coupling_network_is_allowed():
    # depth 0: m() is one linear map, still a valid additive coupling
    NICE((1, 4, 4), couplings=2, hidden=4, depth=0)


def test_an_empty_batch_is_refused_by_name():
    model = Glow(**SMALL_GLOW)
    with pytest.raises(ValueError, match=r"Glow: the batch is empty \(shape \(0, 1, 8, 8\)\)"):
        model.log_prob(np.zeros((0, 1, 8, 8), np.float32))


@pytest.mark.parametrize("kwargs,message", [
    (dict(n=0), r"n must be an integer ≥ 1, got 0"),
    (dict(n=2.5), r"n must be an integer ≥ 1, got 2.5"),
    (dict(n=2, temperature=float("nan")), r"temperature must be a finite number ≥ 0, got nan"),
    (dict(n=2, temperature=float("inf")), r"temperature must be a finite number ≥ 0, got inf"),
    (dict(n=2, temperature=-0.1), r"temperature must be a finite number ≥ 0, got -0.1"),
    (dict(n=2, temperature="0.7"), r"temperature must be a finite number ≥ 0, got '0.7'"),
])
def test_sample_arguments_are_checked_at_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=r"Glow.sample: " + message):
        Glow(**SMALL_GLOW).sample(**kwargs)
