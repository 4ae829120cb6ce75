"""SIGINT and SIGTERM in the command (nflow/cli/interrupts.py): raised as exceptions in the main thread, but held
while Numba compiles, so that they never land inside llvmlite's callbacks and destructors (where Python prints
"Exception ignored" and drops them: an interrupted `nflow eval` once ran on and exited 0, CI 2026-12-06).

The signal is sent from inside a real compilation (a listener on Numba's "numba:compile" event), so the test does
not depend on timing.
"""
import signal
import sys

import numpy as np
import pytest
from numba import njit
from numba.core import event as numba_event

from nflow.cli.interrupts import COMPILER_LOCK_EVENT, Terminated, raised_in_main_thread


class _SignalDuringCompile(numba_event.Listener):
    """Sends ``signum`` to this process as a compilation starts, once."""

    def __init__(self, signum):
        self.signum, self.sent = signum, False

    def on_start(self, ev):
        if not self.sent:
            self.sent = True
            signal.raise_signal(self.signum)

    def on_end(self, ev):
        pass


def _fresh_kernel():
    @njit(cache=False)
    def twice(a):  # a new function each time: its first call compiles
        return 2.0 * a
    return twice


@pytest.fixture(autouse=True)
def live_sigint():
    """These tests are about a process whose Ctrl-C is live. One that a non-interactive shell starts in the
    background (``cmd &``, ``nohup``) inherits SIGINT ignored, which the block rightly leaves ignored (the last
    test): give each test Python's usual handler, and put back what the process had."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture
def unraisable(monkeypatch):
    """The exceptions Python could only print as "Exception ignored ..." during the test."""
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", lambda info: seen.append(info.exc_value))
    return seen


@pytest.mark.parametrize("signum, exception", [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, Terminated)])
def test_a_signal_during_compilation_is_raised_once_the_kernel_is_ready(signum, exception, unraisable):
    kernel, sender = _fresh_kernel(), _SignalDuringCompile(signum)
    numba_event.register("numba:compile", sender)
    try:
        with raised_in_main_thread():
            with pytest.raises(exception):
                kernel(np.ones(3))
    finally:
        numba_event.unregister("numba:compile", sender)
    assert sender.sent
    assert len(kernel.overloads) == 1, "the compilation was cut short instead of finishing first"
    np.testing.assert_array_equal(kernel(np.ones(3)), 2.0)  # and the compiled kernel is whole
    assert unraisable == []


def test_outside_compilation_a_signal_is_raised_at_once():
    with raised_in_main_thread():
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
            for _ in range(1000):  # Python runs the handler between bytecodes, well before this loop ends
                pass
            pytest.fail("SIGINT was not raised")
        with pytest.raises(Terminated):
            signal.raise_signal(signal.SIGTERM)
            for _ in range(1000):
                pass
            pytest.fail("SIGTERM was not raised")


def test_the_block_restores_the_handlers_and_removes_its_listener():
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    listeners = list(numba_event._registered[COMPILER_LOCK_EVENT])
    with raised_in_main_thread():
        assert signal.getsignal(signal.SIGINT) is not before[signal.SIGINT]
        assert len(numba_event._registered[COMPILER_LOCK_EVENT]) == len(listeners) + 1
    assert {s: signal.getsignal(s) for s in before} == before
    assert list(numba_event._registered[COMPILER_LOCK_EVENT]) == listeners


def test_an_ignored_sigint_stays_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with raised_in_main_thread():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            signal.raise_signal(signal.SIGINT)
            for _ in range(1000):
                pass
    finally:
        signal.signal(signal.SIGINT, previous)
