"""A one-line progress display on stderr, redrawn in place with a carriage return.

    step   1200/10000 [######..................]  12.0%  3.41 steps/s  loss 1.2345  bpd 1.2345

On a terminal the line is redrawn at most every REDRAW_INTERVAL_S; when stderr is a file or a pipe (a batch
job's log) a plain line is printed every PIPE_INTERVAL_S instead, so the log does not fill with redraws.
"""
import math
import sys
import time

BAR_WIDTH = 24
REDRAW_INTERVAL_S = 0.1
PIPE_INTERVAL_S = 30.0


def _fmt(value):
    return f"{value:.4f}" if isinstance(value, float) and math.isfinite(value) else "nan"


class ProgressBar:
    def __init__(self, total_steps, start_step=0, stream=None, enabled=True):
        self.total, self.start = total_steps, start_step
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.is_tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval = REDRAW_INTERVAL_S if self.is_tty else PIPE_INTERVAL_S
        self.t0 = time.perf_counter()
        self.last_draw = -math.inf
        self.width = 0
        self.drawn = False

    def line(self, step, loss, bpd, skipped):
        done = step / self.total if self.total else 1.0
        filled = int(round(done * BAR_WIDTH))
        elapsed = time.perf_counter() - self.t0
        rate = (step - self.start) / elapsed if elapsed > 0 else 0.0
        text = (f"step {step:>{len(str(self.total))}}/{self.total} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] "
                f"{100 * done:5.1f}%  {rate:.2f} steps/s  loss {_fmt(loss)}  bpd {_fmt(bpd)}")
        return text + (f"  skipped {skipped}" if skipped else "")

    def update(self, step, loss, bpd, skipped=0, force=False):
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self.last_draw < self.interval:
            return
        self.last_draw = now
        text = self.line(step, loss, bpd, skipped)
        if self.is_tty:
            self.stream.write("\r" + text.ljust(self.width))
            self.width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self.drawn = True

    def close(self):
        if self.enabled and self.is_tty and self.drawn:
            self.stream.write("\n")
            self.stream.flush()
