"""col2im for ``kernels/cpu/conv_jit.py``'s thin convolutions: the twin's (``kernels/reference/conv.py``, whose
docstring has the equation and its adjoint im2col) as a Numba loop that releases the GIL, the images cut over
nflow's own threads (``kernels/cpu/threads.py``).

    col2im:  x[c, n, r, s] = Σ_{i, j} cols[(c, i, j), (n, r - i + p, s - j + p)]   (terms outside the image: none)

Why not the twin's: it adds k² strided slices into a zero-padded buffer (rows of 14 or 28 floats at RealNVP's
sizes, one core) and then copies the interior out; here each output row is summed and written once. Inside a
RealNVP training step its 19 calls took 8.7-8.9 ms against the twin's 12.6 (benchmarks/RESULTS.md, issue 12). The
same loop for im2col lost to NumPy's slice copies (16.5-16.9 ms against 14.9: a strided input defeats its
vectorisation), so im2col stays the twin's.
"""
import numpy as np
from numba import njit

from nflow.kernels.cpu import threads


@njit(cache=True, nogil=True)
def _col2im_images(cols, out, k, lo, hi):
    """out[:, images lo..hi) (C, N, H, W), C-ordered = the sums of the cols entries that land there, taps added in
    the twin's order (i, then j)."""
    c_, _, h, w = out.shape
    p = k // 2
    for c in range(c_):
        for n in range(lo, hi):
            for r in range(h):
                dst = out[c, n, r]
                for s in range(w):
                    dst[s] = 0
                for i in range(k):
                    rr = r - i + p  # the row of cols' positions whose tap i lands on row r
                    if rr < 0 or rr >= h:
                        continue
                    for j in range(k):
                        row = cols[(c * k + i) * k + j]
                        at = (n * h + rr) * w - j + p
                        for s in range(max(0, j - p), min(w, w + j - p)):
                            dst[s] += row[at + s]


def col2im(cols, shape, k):
    """(C·k·k, N·H·W) -> the C-ordered (C, N, H, W) = ``shape`` array of summed taps (the twin's ``col2im``)."""
    out = np.empty(shape, dtype=cols.dtype)
    cols = np.ascontiguousarray(cols)
    threads.split(_col2im_images, [(cols, out, k, lo, hi) for lo, hi in threads.ranges(0, shape[1], 1)])
    return out
