"""``nflow``: the command-line program (console script and ``python -m nflow``).

One rule for failures. Anything a user can cause ends in one line on stderr, ``nflow: error: ...``, and an exit
status, never a traceback:

- 2, a usage error: argparse's own, and the checks each command makes before any work (``commands.fail``);
- 1, a failure during the work: nflow's own errors (:class:`nflow.errors.NflowError`: a damaged checkpoint,
  missing or damaged data, a run that diverged), the operating system's refusals (:class:`OSError`: a full
  disk, a path that cannot be read or written) and memory that runs out (a model or a batch too large for this
  machine: :class:`MemoryError`);
- 128 + the signal's number after Ctrl-C (SIGINT) or SIGTERM: training saves a checkpoint first; the other
  commands stop at once (or, if Numba is compiling a kernel, as soon as it is done: :mod:`nflow.cli.interrupts`),
  and their output files, written atomically, are either complete or absent.

``nflow --debug ...`` lets the traceback through instead. Anything else is a bug in nflow and keeps its traceback.

At start the program asks glibc to keep freed blocks for reuse (:func:`nflow.heap.keep_freed_memory`): each
training step frees and reallocates the same large arrays, and with glibc's defaults those above 32 MiB come back
as fresh pages to fault in every step (Glow's training step at batch 256: 1.46× slower). A
``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TRIM_THRESHOLD_`` set in the environment is left as it is.
"""
import os
import signal
import sys

from nflow.cli.commands import COMMANDS
from nflow.cli.interrupts import Terminated, raised_in_main_thread
from nflow.cli.parser import make_parser
from nflow.errors import NflowError
from nflow.heap import keep_freed_memory

EXIT_FAILURE = 1
SIGNAL_EXIT_BASE = 128


def error(message, status=EXIT_FAILURE):
    print(f"nflow: error: {message}", file=sys.stderr)
    return status


def main(argv=None):
    args = make_parser().parse_args(argv)
    keep_freed_memory()  # a program that runs flows, not a library inside someone else's: see the docstring
    try:
        with raised_in_main_thread():  # SIGINT, SIGTERM as exceptions, held while Numba compiles
            return COMMANDS[args.command](args)
    except (KeyboardInterrupt, Terminated) as e:
        if args.debug:
            raise
        signum = e.signum if isinstance(e, Terminated) else signal.SIGINT
        print(f"nflow: stopped by {signal.Signals(signum).name}", file=sys.stderr)
        return SIGNAL_EXIT_BASE + signum
    except NflowError as e:
        if args.debug:
            raise
        return error(str(e))
    except BrokenPipeError:
        # the reader of our output went away (`nflow inspect RUN | head`): stop quietly, as other programs do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return SIGNAL_EXIT_BASE + signal.SIGPIPE
    except OSError as e:
        if args.debug:
            raise
        where = f": {e.filename}" if e.filename else ""
        return error(f"{e.strerror or e}{where}")
    except MemoryError as e:
        if args.debug:
            raise
        return error(f"out of memory ({e or 'no detail'}); try a smaller model (--hidden, --levels, --flow-steps), "
                     "a smaller --batch-size or fewer samples (-n)")


if __name__ == "__main__":
    sys.exit(main())
