"""The README's Python examples run as written (a newcomer copies them first)."""
import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_has_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index, capsys):
    exec(compile(BLOCKS[index], f"README.md python block {index}", "exec"), {})


def test_every_picture_the_readme_shows_is_in_the_repository():
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README.read_text(encoding="utf-8"))
    assert pictures, "the README shows no picture"
    missing = [p for p in pictures if not (README.parent / p).is_file()]
    assert not missing, missing


def readme_command_lines():
    """Every ``nflow ...`` command of the README's bash blocks (continuation lines joined, comments cut), as
    argument lists; ``mpiexec -n N`` in front is dropped."""
    import shlex
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["mpiexec"]:
                words = words[3:]
            if words[:1] == ["nflow"]:
                commands.append(words[1:])
    return commands


@pytest.mark.parametrize("argv", readme_command_lines(), ids=lambda argv: " ".join(argv)[:60])
def test_every_command_line_the_readme_gives_parses(argv):
    """A flag renamed or removed shows here, not in a newcomer's terminal."""
    from nflow.cli.parser import make_parser
    make_parser().parse_args(argv)
