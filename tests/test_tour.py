"""docs/tour.md: every snippet runs as written, in order, each in a fresh namespace (a reader copies them one by
one), so the tour cannot drift from the code it points at."""
import pathlib
import re

import pytest

TOUR = pathlib.Path(__file__).resolve().parents[1] / "docs" / "tour.md"
BLOCKS = re.findall(r"```python\n(.*?)```", TOUR.read_text(encoding="utf-8"), flags=re.S)


def test_every_stop_has_a_snippet():
    stops = re.findall(r"^## \d+\. ", TOUR.read_text(encoding="utf-8"), flags=re.M)
    assert len(stops) >= 10 and len(BLOCKS) == len(stops)


def test_every_file_the_tour_opens_exists():
    root = TOUR.parents[1]
    named = re.findall(r"`((?:nflow|kernels|tests|docs)/[\w/.*]+\.(?:py|md|cu))`", TOUR.read_text(encoding="utf-8"))
    assert named
    missing = [n for n in named if "*" not in n and not (root / n).is_file()]
    assert not missing, missing


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_tour_snippet_runs(index, capsys):
    exec(compile(BLOCKS[index], f"docs/tour.md python block {index}", "exec"), {})
