"""nflow.heap.keep_freed_memory: glibc keeps a freed large block for the next request instead of unmapping it.

The effect is checked where it shows, in page faults: a 64 MiB array (above the 32 MiB that glibc's dynamic mmap
threshold can reach, so glibc's defaults always mmap it) is allocated, filled and freed five times in a fresh
process. With the defaults every round faults its pages in again; with freed blocks kept, the second and later
rounds reuse the first one's pages. Each check runs in its own interpreter: mallopt changes a process for good.
"""
import os
import platform
import subprocess
import sys

import pytest

import nflow.cli
import nflow.heap
from nflow.heap import ENVIRONMENT_SETTINGS, keep_freed_memory

on_glibc = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                              reason="mallopt is glibc's")

REALLOCATIONS = """
import resource, sys
import numpy as np
from nflow.heap import keep_freed_memory
if sys.argv[1] == "keep":
    changed, why = keep_freed_memory()
    assert changed, why
def filled(nbytes):
    a = np.empty(nbytes // 8)
    a.fill(1.0)
    return a
filled(64 << 20)  # the first time faults in either condition
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    del_me = filled(64 << 20)
    del del_me
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5)
"""


def _faults_per_reallocation(condition):
    env = {k: v for k, v in os.environ.items() if k not in ENVIRONMENT_SETTINGS}
    done = subprocess.run([sys.executable, "-c", REALLOCATIONS, condition], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return float(done.stdout.split()[-1])


@on_glibc
def test_a_freed_64_mib_block_is_reused_without_faulting_its_pages_in_again():
    defaults, kept = _faults_per_reallocation("defaults"), _faults_per_reallocation("keep")
    # 64 MiB is 16384 small pages or 32 huge ones: the defaults fault at least once per 2 MiB page, every round
    assert defaults >= 32, defaults
    assert kept <= defaults / 8, (kept, defaults)


def test_a_malloc_setting_in_the_environment_is_left_as_it_is(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    monkeypatch.setattr(nflow.heap, "_glibc", lambda: pytest.fail("glibc must not be touched"))
    changed, why = keep_freed_memory()
    assert not changed and "MALLOC_TRIM_THRESHOLD_" in why


def test_another_c_library_changes_nothing_and_says_so(monkeypatch):
    for name in ENVIRONMENT_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(platform, "libc_ver", lambda *a, **k: ("", ""))
    changed, why = keep_freed_memory()
    assert not changed and "not glibc" in why


def test_a_refused_threshold_is_reported_not_raised(monkeypatch):
    for name in ENVIRONMENT_SETTINGS:
        monkeypatch.delenv(name, raising=False)

    class Refusing:
        class mallopt:  # noqa: N801  (stands in for the C function)
            argtypes = restype = None

            def __new__(cls, parameter, value):
                return 0

    monkeypatch.setattr(nflow.heap, "_glibc", lambda: Refusing)
    changed, why = keep_freed_memory()
    assert not changed and "refused" in why


def test_the_nflow_command_keeps_freed_memory(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(nflow.cli, "keep_freed_memory", lambda: calls.append(True))
    with pytest.raises(SystemExit):
        nflow.cli.main(["eval", "no-such-checkpoint.npz"])
    assert calls == [True]
