"""Training a class-conditional Glow with labels (``Trainer(labels=...)``, issue 13): each batch's labels are
those of its examples, the step record logs the conditional NLL as the loss and the head's cross-entropy, a
resumed run continues exactly, and what cannot work is refused."""
import json

import numpy as np
import pytest

import nflow
from nflow.checkpoint import load_checkpoint
from nflow.data.dequantize import to_continuous
from nflow.models import Glow
from nflow.train import TrainConfig, Trainer

N, K, SHAPE = 24, 3, (1, 4, 4)


def model(class_weight=0.5, num_classes=K):
    nflow.seed(0)
    return Glow(SHAPE, levels=1, steps=1, hidden=4, num_classes=num_classes, class_weight=class_weight)


def data():
    """Image i is the constant (i + 0.5) / N, so a batch says which examples it holds."""
    return np.broadcast_to(((np.arange(N) + 0.5) / N)[:, None, None, None], (N,) + SHAPE).astype(np.float32).copy()


def labels():
    return np.random.default_rng(1).integers(0, K, N)


def log_records(run_dir):
    with open(run_dir / "log.jsonl") as f:
        return [json.loads(line) for line in f]


def config(**kw):
    return TrainConfig(**{"steps": 6, "batch_size": 8, "progress": False, "checkpoint_every": 0, **kw})


def test_each_batch_gets_the_labels_of_its_examples_and_the_record_logs_the_cross_entropy(tmp_path):
    m, y_all = model(), labels()
    seen = []
    original = m.training_loss

    def recording(x, y):
        index = np.rint(x.numpy()[:, 0, 0, 0] * N - 0.5).astype(int)
        seen.append((index, np.asarray(y)))
        return original(x, y)

    m.training_loss = recording
    Trainer(m, data(), config(), tmp_path, labels=y_all).fit()
    assert len(seen) == 6
    for index, y in seen:
        np.testing.assert_array_equal(y, y_all[index])
    assert sorted(np.concatenate([i for i, _ in seen[:3]])) == list(range(N))   # one epoch: every example once
    records = log_records(tmp_path)
    assert all(np.isfinite(r["class_ce"]) for r in records)
    assert records[0]["class_ce"] == pytest.approx(np.log(K), rel=1e-6)   # the zero-initialised head: uniform


def test_the_logged_loss_is_the_conditional_nll_and_training_lowers_it(tmp_path):
    m = model(class_weight=0.0)
    Trainer(m, data(), config(steps=30, lr=3e-3), tmp_path, labels=labels()).fit()
    records = log_records(tmp_path)
    assert "class_ce" not in records[0]   # no head without a weight
    assert np.mean([r["loss"] for r in records[-5:]]) < np.mean([r["loss"] for r in records[:5]])


def test_a_resumed_run_with_labels_continues_exactly(tmp_path):
    y = labels()
    Trainer(model(), data(), config(), tmp_path / "full", labels=y).fit()
    Trainer(model(), data(), config(steps=3), tmp_path / "half", labels=y).fit()
    Trainer(model(), data(), config(), tmp_path / "half", labels=y).fit(resume=tmp_path / "half" / "checkpoint.npz")
    full = load_checkpoint(tmp_path / "full" / "checkpoint.npz").model_state
    resumed = load_checkpoint(tmp_path / "half" / "checkpoint.npz").model_state
    for name, value in full.items():
        np.testing.assert_array_equal(resumed[name], value, err_msg=name)
    assert np.abs(full["label_prior.embed.weight"]).max() > 0   # the label map did learn


def test_what_cannot_work_is_refused(tmp_path):
    with pytest.raises(ValueError, match="reversible backprop does not take labels"):
        Trainer(model(), data(), config(reversible=True), tmp_path, labels=labels())
    with pytest.raises(ValueError, match=r"labels must be ints, one per example, shape \(24,\)"):
        Trainer(model(), data(), config(), tmp_path, labels=labels()[:5])
    with pytest.raises(ValueError, match=r"labels must be ints"):
        Trainer(model(), data(), config(), tmp_path, labels=labels().astype(float))
    with pytest.raises(ValueError, match="class-conditional .* needs the labels"):   # and no labels at all
        Trainer(model(), data(), config(), tmp_path / "none").fit()
    with pytest.raises(ValueError, match="reversible backprop: this model is class-conditional"):
        Trainer(model(), data(), config(reversible=True), tmp_path / "rev").fit()


@pytest.mark.parametrize("label_prior", ["channel", "position"])
def test_the_label_prior_learns_to_tell_classes_apart(tmp_path, label_prior):
    """Three classes of 8×8 pictures, each brightening its own band of rows: after 150 steps (about 2 s) the
    class posterior of held-out pictures ranks the true class first far more often than chance (1/3; a fresh
    model's posterior is uniform). Seeded, so the number is the same on every run (0.93 when written, for the
    channel form of the label prior; 1.0 for the position form)."""
    def pictures(n, seed):
        rng = np.random.default_rng(seed)
        classes = np.arange(n) % K
        images = rng.integers(0, 60, (n, 1, 8, 8))
        for i, label in enumerate(classes):
            images[i, 0, 2 * label:2 * label + 3] += 150
        return images.astype(np.uint8), classes

    (x, y), (x_test, y_test) = pictures(300, 0), pictures(90, 1)
    nflow.seed(0)
    m = Glow((1, 8, 8), levels=2, steps=1, hidden=8, num_classes=K, label_prior=label_prior)
    held_out = to_continuous(x_test, np.random.default_rng(2), 256, np.float32)
    np.testing.assert_allclose(m.eval().predict(held_out), 1 / K, rtol=1e-12)
    Trainer(m.train(), x, config(steps=150, batch_size=30, lr=3e-3), tmp_path, labels=y).fit()
    accuracy = (m.eval().predict(held_out).argmax(axis=1) == y_test).mean()
    assert accuracy >= 0.7
