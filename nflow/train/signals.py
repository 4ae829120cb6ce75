"""Stopping a run cleanly on SIGINT (Ctrl-C) and SIGTERM (``kill``, a batch scheduler's time limit).

While a :class:`StopSignals` block is active:

- the first signal only sets a flag; the trainer finishes the step under way, saves a checkpoint and returns;
- a second signal aborts the step under way at once by raising :class:`StepAborted` from the handler, unless
  the program is inside a :meth:`StopSignals.critical` section (the parameter update, a checkpoint write):
  there it only confirms the stop request, so parameters and files are never left half-written, and the
  trainer stops as soon as the section (and with it the step) is complete;
- a third and later signals are only counted: the saving that follows an abort is not interrupted.

With ``abortable=False`` every signal only requests the stop: a data-parallel rank must not abort a step alone,
or the other ranks would wait forever in the step's all-reduce (``mpiexec`` itself ends all ranks on a second
Ctrl-C). The previous handlers are restored when the block ends. Outside the main thread Python cannot install
handlers; the block then does nothing and signals keep their usual effect.
"""
import contextlib
import signal
import threading

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StepAborted(Exception):
    """Raised inside a training step by a second stop signal: the step is discarded."""

    def __init__(self, signum):
        super().__init__(f"step aborted by a second {signal.Signals(signum).name}")
        self.signum = signum


class StopSignals:
    """Context manager that turns SIGINT/SIGTERM into a stop request (see the module docstring)."""

    def __init__(self, signals=HANDLED_SIGNALS, abortable=True):
        self.signals = tuple(signals)
        self.abortable = abortable
        self.signum = None  # the first signal received, or None
        self.count = 0
        self._critical_depth = 0
        self._aborted = False  # StepAborted is raised at most once: later signals cannot break the clean-up
        self._previous = {}

    @property
    def requested(self):
        return self.signum is not None

    def _handle(self, signum, frame):
        self.count += 1
        if self.signum is None:
            self.signum = signum
        if self.count >= 2 and self.abortable and not self._critical_depth and not self._aborted:
            self._aborted = True
            raise StepAborted(signum)

    @contextlib.contextmanager
    def critical(self):
        """A section a second signal must not interrupt (inside it, a signal only requests the stop)."""
        self._critical_depth += 1
        try:
            yield
        finally:
            self._critical_depth -= 1

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in self.signals:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()
        return False
