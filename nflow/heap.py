"""Keep the memory a training step frees, for the next step to reuse: glibc's ``mallopt``, set at run time.

A training step allocates the same large activations and gradients every step and frees them at its end. glibc
serves a request above its *mmap threshold* with a fresh ``mmap`` and hands it back to the kernel on ``free``, so
the next step's array of the same size starts as untouched pages and pays a page fault (and the kernel's zeroing)
on every 4 KiB it writes. The threshold starts at 128 KiB and rises with the largest block freed, but never past
32 MiB, and the heap's top is trimmed back to the kernel above ``M_TRIM_THRESHOLD``. Measured with
``python -m benchmarks.freed_memory`` (2 threads; figures in ``benchmarks/RESULTS.md``, issue 12): Glow's training
step at batch 256, whose activations are 50 MB arrays, is 1.46× slower with glibc's defaults than with freed
blocks kept (4.05 s against 2.78 s), at the same peak memory; at batch 16 and 64, and for RealNVP and NICE, the
two are within 4 %. PyTorch's CPU build pays the same (it, too, allocates through ``malloc``).

:func:`keep_freed_memory` raises both thresholds for this process — what ``MALLOC_MMAP_THRESHOLD_`` and
``MALLOC_TRIM_THRESHOLD_`` in the environment do before start — so a freed block stays in the heap for the next
request. The price: the process keeps the memory of its largest step until it exits (its resident size does not
fall back between steps). That is right for a training or sampling run and not for every program that imports
nflow, so the library never calls it by itself; the ``nflow`` command does, at start. Where a person has set
either variable, their choice stands and nothing is changed. Only glibc has ``mallopt``: elsewhere (macOS,
musl, Windows) the call changes nothing and says why.
"""
import ctypes
import ctypes.util
import os
import platform

# mallopt's parameter numbers, from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# The thresholds asked for: 1 GiB before a block is mmapped, 2 GiB of free heap top before it is trimmed (the values
# the benchmark runner's "tuned" setting puts in the environment). Older glibc refuses an mmap threshold above
# HEAP_MAX_SIZE / 2 (32 MiB on 64-bit; 2.36 here takes 1 GiB), so that is tried next.
MMAP_THRESHOLDS = (1 << 30, 32 << 20)
TRIM_THRESHOLD = 1 << 31
ENVIRONMENT_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def _glibc():
    """The C library as a ctypes handle when it is glibc, else None."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def keep_freed_memory():
    """Make glibc keep freed blocks for reuse instead of returning them to the kernel (see the module docstring).

    Returns ``(changed, why)``: whether the thresholds were set, and a sentence saying what was done or why not
    (another C library, the person's own ``MALLOC_*`` setting, a refusal by ``mallopt``). Calling it again is
    harmless.
    """
    already = [name for name in ENVIRONMENT_SETTINGS if name in os.environ]
    if already:
        return False, f"left as set in the environment ({', '.join(already)})"
    libc = _glibc()
    if libc is None:
        return False, f"not glibc ({platform.system()} {platform.libc_ver()[0] or 'unknown C library'}): no mallopt"
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    mmap_threshold = next((value for value in MMAP_THRESHOLDS if libc.mallopt(M_MMAP_THRESHOLD, value) == 1), None)
    if mmap_threshold is None:
        return False, "mallopt refused every mmap threshold tried"
    if libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) != 1:
        return False, f"mmap threshold set to {mmap_threshold} bytes, but mallopt refused the trim threshold"
    return True, f"freed blocks below {mmap_threshold} bytes are kept for reuse (mallopt)"
