"""The base of nflow's own errors: things a user can cause (a bad file, missing data, a run that diverged).

Every error class nflow raises for a cause outside the program derives from :class:`NflowError`, as well as from
the built-in class that fits it (``ValueError`` for bad content, ``RuntimeError`` for a failed run), so callers
may catch either. The command line catches :class:`NflowError` at its top and prints its message as one line,
``nflow: error: ...``, with no traceback (``nflow --debug ...`` shows it). A message names what was wrong (the
file, the entry, the argument), what was expected and what arrived.
"""


class NflowError(Exception):
    """An error a user can cause and fix; its message is one complete sentence for them."""
