"""Rewriting the runner's own section of ``benchmarks/RESULTS.md`` in place, leaving every other section alone."""
import os

from benchmarks.workloads import ROOT

SECTION = "## nflow vs PyTorch: the runner (issues 7 and 12)"


RESULTS = ROOT / "benchmarks" / "RESULTS.md"


def write_section(text):
    """Replace this runner's section of RESULTS.md (other sections belong to other benchmarks)."""
    body = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\nEach section is written by the " \
                                                         "benchmark named in it; rerun that one to refresh it.\n"
    start = body.find(SECTION)
    if start < 0:
        body = body.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n"
    else:
        nxt = body.find("\n## ", start + len(SECTION))
        end = len(body) if nxt < 0 else nxt + 1
        body = body[:start] + text.rstrip("\n") + "\n" + ("\n" + body[end:] if nxt >= 0 else "")
    tmp = RESULTS.with_suffix(".md.tmp")
    tmp.write_text(body)
    os.replace(tmp, RESULTS)
