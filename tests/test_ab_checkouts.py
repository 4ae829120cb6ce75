"""``benchmarks/ab_checkouts.py --interleave``: two long-lived children, one per checkout, every call of every op
alternated between them, each pair's ratio kept; a child that cannot start ends the run with its checkout named."""
import os

import pytest

from benchmarks import ab_checkouts

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = {"nice": ("NICE", dict(input_shape=(1, 4, 4), couplings=2, hidden=8, depth=1), 4)}
OPS = ["nice train_step", "nice log_prob", "nice sample"]


def test_every_call_of_every_op_is_paired_between_the_two_children(monkeypatch):
    monkeypatch.setattr(ab_checkouts, "REST_S", 0.0)
    times, ratios = ab_checkouts.interleaved({"old": ROOT, "new": ROOT}, 3, 1, TINY, "wall")
    assert list(ratios) == OPS
    for op in OPS:
        assert len(times["old"][op]) == len(times["new"][op]) == 3
        assert all(t > 0 for side in ("old", "new") for t in times[side][op])
        assert ratios[op] == pytest.approx([new / old for old, new in zip(times["old"][op], times["new"][op])])


def test_a_child_that_cannot_start_ends_the_run_with_its_checkout_named(tmp_path):
    # no nflow/ in tmp_path: the child would import another nflow, which it refuses
    with pytest.raises(SystemExit, match="the child in " + str(tmp_path)):
        ab_checkouts.interleaved({"old": ROOT, "new": str(tmp_path)}, 1, 1, TINY, "wall")


@pytest.mark.parametrize("argv", [["--rounds", "0"], ["--repeats", "0"], ["--rounds", "1", "--repeats", "1",
                                                                          "--interleave"]])
def test_counts_that_leave_nothing_to_compare_are_refused_with_a_sentence(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        ab_checkouts.main([ROOT, ROOT] + argv)
    assert exit_.value.code == 2 and "at least" in capsys.readouterr().err
