"""Ctrl-C (SIGINT) and SIGTERM as exceptions in the command's main thread — held back while Numba compiles.

The command stops on either signal by unwinding: SIGINT raises :class:`KeyboardInterrupt`, SIGTERM
:class:`Terminated`, and ``nflow.cli.main`` turns both into one line and the exit status 128 + the signal's number
(training handles its own signals: ``nflow.train.signals``).

Why not at once, always: an exception raised by a signal handler lands wherever the main thread happens to be,
and while Numba compiles or loads a kernel from its cache (the first call of each kernel, a second or so into any
command), that can be inside llvmlite's ctypes callbacks or destructors, where Python cannot propagate it. It is
then printed as "Exception ignored ..." with a traceback and *dropped*: measured, ``nflow eval`` interrupted 0.05 s
after its handlers were in place (a cold Numba cache) ran to the end and exited 0, the Ctrl-C lost; interrupted a
little later it stopped, but llvmlite's half-built objects printed a traceback at exit (CI, 2026-12-06). So
while Numba holds its compiler lock (its ``"numba:compiler_lock"`` event, which brackets cache loads and
compilations alike) the handler only records the signal, and the exception is raised when the lock is released,
right after the kernel is ready.
"""
import contextlib
import signal
import threading

try:
    from numba.core import event as numba_event
except ImportError:  # the numpy backend runs without Numba: nothing compiles, nothing to wait for
    numba_event = None

HANDLED = (signal.SIGINT, signal.SIGTERM)
COMPILER_LOCK_EVENT = "numba:compiler_lock"


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that a command unwinds (temporary files removed) as on Ctrl-C."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _exception_for(signum):
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)


# Numba's event registry accepts only its own Listener's subclasses
_LISTENER = numba_event.Listener if numba_event is not None else object


class _HeldWhileCompiling(_LISTENER):
    """Signal handler and Numba event listener in one: counts the main thread's nesting inside Numba's compiler
    lock, holds the first signal that arrives there, and raises it when the outermost lock is released."""

    def __init__(self):
        self.depth = 0
        self.held = None  # the exception of the first signal received while compiling

    def handle(self, signum, frame):
        if self.depth > 0:
            self.held = self.held or _exception_for(signum)
            return
        raise _exception_for(signum)

    def on_start(self, ev):
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            self.depth += 1

    def on_end(self, ev):
        if threading.current_thread() is not threading.main_thread():
            return
        self.depth -= 1
        if self.depth == 0 and self.held is not None:  # the lock is released: the kernel is ready
            held, self.held = self.held, None
            raise held


@contextlib.contextmanager
def raised_in_main_thread():
    """Within the block, SIGINT and SIGTERM raise KeyboardInterrupt and Terminated in the main thread, held back
    while Numba compiles (see the module docstring); outside it, the previous handlers. A signal that was ignored
    stays ignored. Called from another thread, it changes nothing (only the main thread may set handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    holder = _HeldWhileCompiling()
    # a signal the process was started with ignored stays ignored (a shell's background job ignores SIGINT)
    previous = {signum: signal.signal(signum, holder.handle) for signum in HANDLED
                if signal.getsignal(signum) is not signal.SIG_IGN}
    if numba_event is not None:
        numba_event.register(COMPILER_LOCK_EVENT, holder)
    try:
        yield
    finally:
        if numba_event is not None:
            numba_event.unregister(COMPILER_LOCK_EVENT, holder)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
