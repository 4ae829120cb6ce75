"""nflow's own worker threads, for kernels that split their work in parts (``kernels/cpu/conv_jit.py``).

Why not Numba's ``parallel=True`` or OpenBLAS's threads: OpenBLAS's idle worker spins for ~0.1 s after every
threaded call, and Numba's OpenMP workers spin too, so two thread pools on two cores take turns badly (measured in
issue 12's sessions: every parallel Numba kernel placed between OpenBLAS calls lost). The kernels that use this
pool run where nflow makes no threaded BLAS call around them (a network whose convolutions are all nflow's own),
and its workers block on a queue when idle, spinning never.

:func:`split` runs ``fn(*args)`` for each part: the calling thread takes the first part itself, a worker each of
the others. The work functions are ctypes calls into compiled kernels, which release the GIL, so the parts run on
as many cores at once. :data:`THREADS` parts at most: Numba's configured thread count (``NUMBA_NUM_THREADS``, the
number of CPUs this process may use unless set).
"""
import itertools
import os
import queue
import threading

import numba

THREADS = max(1, int(numba.config.NUMBA_NUM_THREADS))


class Pool:
    """``workers`` daemon threads, each taking (fn, args, ticket) from its own queue and answering (ticket, error) on a
    shared one. The ticket names the split a part belongs to: a split interrupted while it waited (Ctrl-C) leaves
    its workers' answers behind, and the next split must not count them as its own."""

    def __init__(self, workers):
        self.pid = os.getpid()
        self.lock = threading.Lock()  # one split at a time: a second caller's parts wait for the first's
        self.tasks = [queue.SimpleQueue() for _ in range(workers)]
        self.done = queue.SimpleQueue()
        self.tickets = itertools.count()
        for tasks in self.tasks:
            threading.Thread(target=self._work, args=(tasks,), daemon=True, name="nflow-kernel-worker").start()

    def _work(self, tasks):
        while True:
            fn, args, ticket = tasks.get()
            try:
                fn(*args)
                self.done.put((ticket, None))
            except BaseException as error:  # hand the error to the caller rather than losing the thread
                self.done.put((ticket, error))

    def split(self, fn, parts):
        """fn(*part) for every part of ``parts`` (at most one more than the workers), all at once; returns when
        every part has finished, re-raising the first error a worker met."""
        if len(parts) > len(self.tasks) + 1:
            raise ValueError(f"threads.split: {len(parts)} parts for {len(self.tasks) + 1} threads")
        with self.lock:
            ticket = next(self.tickets)
            for tasks, args in zip(self.tasks, parts[1:]):
                tasks.put((fn, args, ticket))
            first_error = None
            try:
                if parts:
                    fn(*parts[0])
            finally:
                waiting = len(parts) - 1
                while waiting:
                    answered, error = self.done.get()
                    if answered == ticket:  # an earlier, interrupted split's answers are dropped
                        waiting -= 1
                        first_error = first_error or error
        if first_error is not None:
            raise first_error


_POOL = None


def split(fn, parts):
    """Run ``fn(*part)`` for each of ``parts`` (at most :data:`THREADS`) on this thread and the pool's workers."""
    global _POOL
    if len(parts) <= 1:
        for args in parts:
            fn(*args)
        return
    if _POOL is None or _POOL.pid != os.getpid():  # none yet, or a forked child, which has no worker threads
        _POOL = Pool(THREADS - 1)
    _POOL.split(fn, parts)


def ranges(start, stop, step, parts=None):
    """[start, stop) cut into at most ``parts`` (default :data:`THREADS`) contiguous pieces, each a multiple of
    ``step`` long except perhaps the last; empty pieces are left out."""
    parts = THREADS if parts is None else parts
    blocks = -(-(stop - start) // step)
    bounds = [start + step * (blocks * i // parts) for i in range(parts)] + [stop]
    return [(lo, min(hi, stop)) for lo, hi in zip(bounds[:-1], bounds[1:]) if lo < min(hi, stop)]
