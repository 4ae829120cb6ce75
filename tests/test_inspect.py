"""``nflow.inspect`` and ``nflow inspect`` (issue 17): the held-out NLL taken apart by level and layer.

The terms must add up to what ``nflow.train.evaluate`` (and so ``nflow eval``) reports, to 1e-6 relative; each
level's term must be minus the sum of its layers' log-dets; the latent statistics must be those of the latents
``encode`` gives on the same inputs; the condition numbers those NumPy computes from W.
"""
import json

import numpy as np
import pytest

import nflow
from nflow.backend import to_numpy
from nflow.flows import InvConv1x1
from nflow.inspect import PRIOR_TAIL, decompose, latent_picture, level_pictures
from nflow.models import NICE, Glow, RealNVP
from nflow.tensor import no_grad
from nflow.train import evaluate
from nflow.train.evaluate import eval_batches
from cli_helpers import run

SUM_RTOL = 1e-6
MODELS = {
    "Glow": lambda: Glow((1, 8, 8), levels=2, steps=2, hidden=8),
    "RealNVP/image": lambda: RealNVP((1, 8, 8), scales=2, hidden=4),
    "NICE": lambda: NICE((1, 8, 8), couplings=2, hidden=8, depth=1),
}


def perturbed(name):
    """The model with every parameter moved off its (often zero, identity-making) initial value."""
    nflow.seed(0)
    model = MODELS[name]()
    rng = np.random.default_rng(1)
    for p in model.parameters():
        p.data = p.data + (0.05 * rng.standard_normal(p.shape)).astype(p.dtype)
    return model


def images(n=24, seed=2):
    return np.random.default_rng(seed).integers(0, 256, (n, 1, 8, 8), dtype=np.uint8)


@pytest.mark.parametrize("name", list(MODELS))
def test_the_terms_add_up_to_the_evaluated_nll(name):
    model, data = perturbed(name), images()
    d = decompose(model, data, batch_size=10)
    nll = evaluate(model, data, batch_size=10)["nll"]
    assert abs(d.total_nats - nll) <= SUM_RTOL * abs(nll)
    assert abs(sum(t.nats for t in d.terms if t.nats is not None) - d.total_nats) <= 1e-9 * abs(nll)
    bpd = evaluate(model, data, batch_size=10)["bpd"]
    assert d.total_bits_per_dim == pytest.approx(bpd, rel=SUM_RTOL)
    assert d.terms[-1].bits_per_dim == 8.0 and d.terms[-1].nats is None   # 8-bit pixels


@pytest.mark.parametrize("name", list(MODELS))
def test_each_level_is_minus_the_sum_of_its_layers_log_dets(name):
    d = decompose(perturbed(name), images(), batch_size=10)
    for term in d.terms:
        if term.name.endswith("-log-dets"):
            level = term.name.split(":")[0]
            layers = [s.logdet_mean for s in d.layers if s.level == level]
            assert term.nats == pytest.approx(-sum(layers), rel=1e-12, abs=1e-12)


def test_latent_statistics_are_those_of_the_encoded_latents():
    model, data = perturbed("Glow"), images()
    d = decompose(model, data, batch_size=100)
    with no_grad():
        x = next(eval_batches(data, 100))        # the same dequantized inputs, in one batch
        latents = model.eval().encode(x)
    assert [z.shape for z in d.latents] == [tuple(a.shape[1:]) for a in latents]
    for stats, z in zip(d.latents, latents):
        z = to_numpy(z).astype(np.float64)
        assert stats.mean == pytest.approx(z.mean(), abs=1e-6)
        assert stats.std == pytest.approx(z.std(), rel=1e-5)
        assert stats.tail_fraction == np.mean(np.abs(z) > 3.0)
        assert stats.prior_tail_fraction == pytest.approx(0.0026998, rel=1e-4)
    assert PRIOR_TAIL["logistic"] == pytest.approx(2 / (1 + np.exp(3 * np.pi / np.sqrt(3))))


def test_condition_numbers_are_those_of_w_and_parameters_are_counted():
    model = perturbed("Glow")
    d = decompose(model, images(), batch_size=10)
    convs = [layer for layer in model.flow_layers() if isinstance(layer, InvConv1x1)]
    rows = [s for s in d.layers if s.layer == "InvConv1x1"]
    assert len(rows) == len(convs) == 4
    for s, layer in zip(rows, convs):
        with no_grad():
            w = to_numpy(layer.weight_matrix().data).astype(np.float64)   # cond(W) is computed in float64
            assert s.condition == pytest.approx(np.linalg.cond(w), rel=1e-9)
    assert sum(s.parameters for s in d.layers) == sum(int(p.size) for p in model.parameters())


def test_level_pictures_show_each_latent_then_end_with_the_reconstruction():
    model, data = perturbed("Glow"), images(n=4)
    sheet = level_pictures(model.eval(), data)
    assert sheet.shape == (4 * 5, 1, 8, 8)    # inputs, latents of levels 1 and 2, top level alone, both levels
    inputs, reconstruction = sheet[:4], sheet[16:]
    assert np.abs(reconstruction - inputs).max() < 1e-4
    assert np.abs(sheet[12:16] - inputs).max() > 1e-2   # the top level alone is not the whole picture
    with no_grad():
        level1 = to_numpy(model.encode(next(eval_batches(data, 4)))[0]).astype(np.float64)   # (4, 2, 4, 4)
    rms = np.sqrt((level1 ** 2).mean(axis=1))            # per position, over channels
    expected = np.clip(rms / 3.0, 0, 1).repeat(2, axis=1).repeat(2, axis=2)   # 4×4 grid -> 8×8 image
    np.testing.assert_allclose(sheet[4:8, 0], expected, rtol=1e-6, atol=1e-7)


def test_a_vector_latent_of_the_image_size_is_drawn_as_the_image():
    z = np.arange(2 * 4, dtype=np.float64).reshape(2, 4) - 3.0   # NICE-like (n, D), D = 1·2·2
    picture = latent_picture(z, (1, 2, 2))
    assert picture.shape == (2, 1, 2, 2)
    np.testing.assert_allclose(picture.reshape(2, 4), np.clip(np.abs(z) / 3.0, 0, 1))


def test_empty_data_is_refused():
    with pytest.raises(ValueError, match="no data"):
        decompose(perturbed("NICE"), images(n=0))


# ------------------------------------------------------------------------------------------------ the command


def test_nflow_inspect_prints_a_decomposition_that_adds_up_to_nflow_eval(tmp_path, capsys):
    data = np.random.default_rng(4).integers(0, 256, (60, 1, 8, 8), dtype=np.uint8)
    np.save(tmp_path / "d.npy", data)
    out = tmp_path / "run"
    assert run("train", "--data", f"npy:{tmp_path / 'd.npy'}", "--model", "glow", "--levels", 2, "--flow-steps", 1,
               "--hidden", 4, "--steps", 3, "--batch-size", 8, "--no-progress", "--out", out) == 0
    capsys.readouterr()
    assert run("eval", out, "--json") == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert run("inspect", out, "--json") == 0
    inspected = json.loads(capsys.readouterr().out)
    assert inspected["total_nats"] == pytest.approx(evaluated["nll_nats"], rel=SUM_RTOL)
    assert inspected["total_bits_per_dim"] == pytest.approx(evaluated["bits_per_dim"], rel=SUM_RTOL)
    assert run("inspect", out, "-o", tmp_path / "levels.png") == 0
    text = capsys.readouterr().out
    assert "level 1: -log-dets" in text and "cond(W)" in text and "beyond ±3σ" in text
    assert (tmp_path / "levels.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_nflow_inspect_refuses_level_pictures_of_a_toy_model(tmp_path, capsys):
    out = tmp_path / "toy"
    assert run("train", "--steps", 1, "--hidden", 8, "--couplings", 2, "--no-progress", "--out", out) == 0
    assert run("inspect", out, "--limit", 100, "-o", tmp_path / "x.png") == 2
    captured = capsys.readouterr()
    assert "need an image model" in captured.err and "taken apart" not in captured.out   # refused before the work
