"""The run's step log: one JSON object per line (JSON Lines), appended as training goes.

Each line: ``{"step", "loss", "bpd", "grad_norm", "lr", "seconds", "skipped"}`` plus ``"reason"`` on skipped
steps. ``step`` is 1-based (the number of steps completed), ``loss`` the mean negative log-likelihood of the
batch in nats, ``bpd`` its bits per dimension, ``grad_norm`` the global gradient norm before clipping,
``seconds`` the wall time of the step. NaN and inf are not JSON, so non-finite numbers are written as null
(the ``skipped`` flag and ``reason`` say what happened).
"""
import json
import math
import os

from nflow.atomic import atomic_write


def _finite_or_none(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def read_log(path):
    """All records of a log file, in order; a last line cut off by a crash is ignored, missing file -> []."""
    if not os.path.exists(path):
        return []
    records = []
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:  # unterminated last line: a write interrupted by a crash
                break
            raise ValueError(f"{path}: line {i + 1} is not valid JSON: {line[:80]!r}") from None
    return records


class RunLog:
    """Append-only JSON Lines writer. ``RunLog(path, keep_until=step)`` first drops records after ``step``
    (a resumed run rewrites history from its checkpoint on, so the log matches an uninterrupted run)."""

    def __init__(self, path, keep_until=None):
        self.path = os.fspath(path)
        if keep_until is not None and os.path.exists(self.path):
            kept = [r for r in read_log(self.path) if r.get("step", 0) <= keep_until]
            atomic_write(self.path, lambda f: f.writelines(json.dumps(r) + "\n" for r in kept), mode="w")
        elif keep_until is None and os.path.exists(self.path):
            os.remove(self.path)  # a fresh run starts a fresh log
        self._file = open(self.path, "a", encoding="utf-8")

    def write(self, record):
        line = json.dumps({k: _finite_or_none(v) for k, v in record.items()}, allow_nan=False)
        self._file.write(line + "\n")
        self._file.flush()

    def close(self):
        if not self._file.closed:
            self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class NullLog:
    """The log of a rank that writes no files (every rank but 0 of a distributed run): takes records, keeps none."""

    def write(self, record):
        pass

    def close(self):
        pass
