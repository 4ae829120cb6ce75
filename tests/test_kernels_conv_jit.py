"""nflow's own convolution kernels (kernels/cpu/conv_jit.py: GEMM micro-kernels in LLVM IR on nflow's own threads)
against NumPy's float64 products and the im2col twin (kernels/reference/conv.py), and the thread pool they run on.

Tolerance: float32 sums of up to C·k² ≤ 20·25 products in another order than float64's: relative 2e-6 of the
largest output (a few roundings of the largest partial sum).
"""
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nflow.kernels.cpu import conv as cpu_conv
from nflow.kernels.cpu import col2im as cpu_col2im
from nflow.kernels.cpu import conv_grid, conv_jit, jit, threads
from nflow.kernels.reference import bias_relu as ref_bias_relu
from nflow.kernels.reference import conv as ref_conv

RTOL = 2e-6
needs_jit = pytest.mark.skipif(not jit.AVAILABLE, reason=f"no LLVM JIT here: {jit.UNAVAILABLE_REASON}")


def _close(got, want):
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=RTOL * max(float(np.abs(want).max()), 1.0))


def _draw(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


def _check_layout(y, x, wt):
    """A thin input into a wide output comes back as a padded view over zero borders (conv_jit._padded_output);
    every other output C-ordered."""
    c, n, h, w = x.shape
    if not conv_jit._pads_output(c, wt.shape[0], wt.shape[2]):
        assert y.flags.c_contiguous
        return
    grid = conv_grid.Grid(n, h, w, wt.shape[2])
    buffer = conv_grid.padded_buffer(y, grid)
    assert buffer is not None and np.shares_memory(buffer, y)
    want = np.zeros_like(buffer)
    cells = grid.cells(want, grid.first_anchor)
    cells[:, :, :h, :w] = y
    np.testing.assert_array_equal(buffer, want)  # zero outside the interior, the view inside


@needs_jit
@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 20), k=st.integers(1, 70), n=st.integers(1, 200), seed=st.integers(0, 2 ** 32 - 1))
def test_matmul_and_the_long_inner_product_match_float64(m, k, n, seed):
    """Every size around the kernels' blocks (MR = 6 rows, NR = 64 columns; MO = 4, NK = 6, 16 pixels): the tails
    the kernels reach through zero-padded copies must come out as the whole products."""
    rng = np.random.default_rng(seed)
    a, b = _draw(rng, (m, k)), _draw(rng, (k, n))
    _close(conv_jit.matmul(a, b), a.astype(np.float64) @ b)
    g, x = _draw(rng, (m, n)), _draw(rng, (k, n))
    _close(conv_jit.matmul_nt(g, x), g.astype(np.float64) @ x.T.astype(np.float64))
    bias = _draw(rng, m)  # the fused epilogue, on whole strips and on the copied tail alike
    _close(conv_jit.matmul(a, b, relu_bias=bias), np.maximum(a.astype(np.float64) @ b + bias[:, None], 0))


@settings(max_examples=30, deadline=None)
@given(c=st.integers(1, 4), n=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9), k=st.sampled_from([1, 3, 5]),
       seed=st.integers(0, 2 ** 32 - 1))
def test_the_numba_col2im_is_the_twins(c, n, h, w, k, seed):
    """kernels/cpu/col2im.py against the NumPy twin's (the same taps summed in the same order): kernels larger than
    the image, one image per thread or several."""
    rng = np.random.default_rng(seed)
    cols = _draw(rng, (c * k * k, n * h * w))
    got, want = cpu_col2im.col2im(cols, (c, n, h, w), k), ref_conv.col2im(cols, (c, n, h, w), k)
    assert got.flags.c_contiguous
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@needs_jit
@pytest.mark.parametrize("rows", [12, 40])  # panel_gemm (a few blocks of rows) and packed_gemm (more)
def test_products_over_several_panels_and_a_partial_one_match_float64(rows):
    """Two whole panels of PANEL_STRIPS strips, a partial one and a tail narrower than a strip, over both threads;
    an inner dimension of two chunks of KC rows and a part of one."""
    rng = np.random.default_rng(5)
    n = (2 * conv_jit.PANEL_STRIPS + 3) * conv_jit.NR + 5
    a, b = _draw(rng, (rows, 2 * conv_jit.KC + 7)), _draw(rng, (2 * conv_jit.KC + 7, n))
    _close(conv_jit.matmul(a, b), a.astype(np.float64) @ b)


@needs_jit
@pytest.mark.parametrize("backward_follows", [False, True])
@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 3), c_in=st.sampled_from([1, 2, 3, 16, 20]), c_out=st.sampled_from([1, 2, 4, 16, 17]),
       h=st.integers(1, 9), w=st.integers(1, 9), k=st.sampled_from([1, 3, 5]), seed=st.integers(0, 2 ** 32 - 1))
def test_the_convolution_matches_the_im2col_twin(backward_follows, n, c_in, c_out, h, w, k, seed):
    """Both algorithms (shifted windows when both sides have 16 channels or more, else unfolding the narrow side)
    against the twin in float64, forward and both gradients."""
    rng = np.random.default_rng(seed)
    x, wt, gy = _draw(rng, (c_in, n, h, w)), _draw(rng, (c_out, c_in, k, k)), _draw(rng, (c_out, n, h, w))
    x64, w64, gy64 = (a.astype(np.float64) for a in (x, wt, gy))
    y = conv_jit.forward(x, wt, backward_follows)
    _check_layout(y, x, wt)
    _close(y, ref_conv.forward(x64, w64))
    gx, gw = conv_jit.backward(x, wt, gy)
    want_gx, want_gw = ref_conv.backward(x64, w64, gy64)
    assert gx.flags.c_contiguous and gw.flags.c_contiguous
    _close(gx, want_gx)
    _close(gw, want_gw)


@needs_jit
@pytest.mark.parametrize("overwrite_gy", [False, True])
@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 3), c_in=st.sampled_from([1, 3, 16, 20]), c_out=st.sampled_from([2, 16, 17]),
       h=st.integers(1, 9), w=st.integers(1, 9), k=st.sampled_from([3, 5]), seed=st.integers(0, 2 ** 32 - 1))
def test_the_fused_bias_relu_epilogue_matches_the_twins(overwrite_gy, n, c_in, c_out, h, w, k, seed):
    """forward(relu_bias=b) = max(conv + b, 0) and relu_backward = (dx, dw, db) of it, against the conv and
    bias_relu twins in float64: fused into the grid copies (shifted windows) or on both threads (unfolded). gy is
    left alone unless the caller gives it away."""
    rng = np.random.default_rng(seed)
    x, wt, gy = _draw(rng, (c_in, n, h, w)), _draw(rng, (c_out, c_in, k, k)), _draw(rng, (c_out, n, h, w))
    b = _draw(rng, (c_out,))
    x64, w64, gy64, b64 = (a.astype(np.float64) for a in (x, wt, gy, b))
    want_y = ref_bias_relu.forward(ref_conv.forward(x64, w64).reshape(c_out, -1), b64).reshape(gy.shape)
    y = conv_jit.forward(x, wt, True, relu_bias=b)
    _check_layout(y, x, wt)
    _close(y, want_y)
    gz, want_gb = ref_bias_relu.backward(y.astype(np.float64).reshape(c_out, -1), gy64.reshape(c_out, -1))
    want_gx, want_gw = ref_conv.backward(x64, w64, gz.reshape(gy.shape))
    gy_before = gy.copy()
    gx, gw, gb = conv_jit.relu_backward(x, wt, y, gy, overwrite_gy=overwrite_gy)
    _close(gx, want_gx)
    _close(gw, want_gw)
    _close(gb, want_gb)
    if not overwrite_gy:
        np.testing.assert_array_equal(gy, gy_before)


@needs_jit
def test_the_fused_epilogue_keeps_nan_and_reads_a_strided_gradient():
    """NaN is not clipped: max(NaN + b, 0) stays NaN (and never leaks into a padded view's borders), and a NaN
    gradient where the ReLU was off stays NaN in the bias's gradient (NaN · 0), as in the twin; gy may be an NCHW
    batch seen channel-major (a strided view)."""
    rng = np.random.default_rng(11)
    for c_in, c_out in ((16, 16), (2, 16)):  # shifted windows, unfolded
        x, wt = _draw(rng, (c_in, 2, 6, 5)), _draw(rng, (c_out, c_in, 3, 3))
        x[0, 1, 2, 3] = np.nan
        y = conv_jit.forward(x, wt, True, relu_bias=np.zeros(c_out, np.float32))
        assert np.isnan(y[:, 1, 1:4, 2:5]).all() and not np.isnan(y[:, 0]).any()
        _check_layout(y, x, wt)  # a padded view's borders stay 0 beside the NaN pixel (junk there is NaN)
        ones = np.ones_like(x)
        y = conv_jit.forward(ones, wt, True, relu_bias=np.full(c_out, -1e9, np.float32))  # ReLU off everywhere
        gy_nchw = _draw(rng, (2, c_out, 6, 5))
        gy_nchw[1, 3, 0, 0] = np.nan
        gy = gy_nchw.transpose(1, 0, 2, 3)
        _, gw, gb = conv_jit.relu_backward(ones, wt, y, gy)
        assert np.isnan(gb[3]) and not np.isnan(np.delete(gb, 3)).any()
        assert np.isnan(gw[3]).all() and np.isfinite(np.delete(gw, 3, axis=0)).all()  # NaN · 0 = NaN, as the twin
        _, _, gb = conv_jit.relu_backward(ones, wt, y, np.ones_like(gy))
        np.testing.assert_array_equal(gb, 0)


@pytest.mark.parametrize("c_in, c_out", [(64, 64), (2, 64), (64, 4), (2, 256), (4, 130)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_cpu_familys_fused_epilogue_agrees_with_the_twins_on_every_path(c_in, c_out, dtype):
    """kernels/cpu/conv.py's forward(relu_bias) and relu_backward on whichever path the dispatch rule picks (the
    own kernels in float32 where they run, BLAS in float64) against the twin's, which runs the bias_relu twin."""
    rng = np.random.default_rng(12)
    x, wt, gy = (rng.standard_normal(s).astype(dtype) for s in ((c_in, 2, 7, 7), (c_out, c_in, 3, 3), (c_out, 2, 7, 7)))
    b = rng.standard_normal(c_out).astype(dtype)
    y = cpu_conv.forward(x, wt, True, relu_bias=b)
    want_y = ref_conv.forward(x.astype(np.float64), wt.astype(np.float64), True, relu_bias=b.astype(np.float64))
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y, want_y, **tol)
    got = cpu_conv.relu_backward(x, wt, y, gy.copy())
    want = ref_conv.relu_backward(x.astype(np.float64), wt.astype(np.float64), y.astype(np.float64),
                                  gy.astype(np.float64))
    for a, e in zip(got, want):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, e, rtol=tol["rtol"], atol=tol["atol"] * max(1.0, float(np.abs(e).max())))


@needs_jit
def test_a_padded_view_is_read_in_place_by_the_next_convolution_on_its_grid_and_only_by_it():
    """RealNVP's 2 -> 64 conv hands its output to the 64 -> 64 one as a padded view: that conv reads the buffer
    behind it (no copy) in its forward and for its weight gradient, with the results of a plain copy; a conv on
    another grid (k = 5) copies it; the view's entry goes when the view does."""
    rng = np.random.default_rng(13)
    x, w1, w2 = _draw(rng, (2, 3, 10, 9)), _draw(rng, (16, 2, 3, 3)), _draw(rng, (16, 16, 3, 3))
    h1 = conv_jit.forward(x, w1, True, relu_bias=_draw(rng, (16,)))
    plain = np.ascontiguousarray(h1)
    grid = conv_grid.Grid(3, 10, 9, 3)
    assert np.shares_memory(grid.padded(h1), h1) and not np.shares_memory(grid.padded(plain), plain)
    assert not np.shares_memory(conv_grid.Grid(3, 10, 9, 5).padded(h1), h1)
    np.testing.assert_array_equal(conv_jit.forward(h1, w2), conv_jit.forward(plain, w2))
    gy = _draw(rng, (16, 3, 10, 9))
    for got, want in zip(conv_jit.backward(h1, w2, gy), conv_jit.backward(plain, w2, gy)):
        np.testing.assert_array_equal(got, want)
    entries = len(conv_grid._PADDED_VIEWS)
    del h1
    assert len(conv_grid._PADDED_VIEWS) == entries - 1


@needs_jit
def test_realnvp_sized_convolutions_match_the_twin():
    """The shapes the dispatch rule sends here in RealNVP (64 hidden channels, 1-4 at the ends, 28x28 and 14x14),
    on a batch of 2: many whole strips, two threads' shares."""
    rng = np.random.default_rng(7)
    for c_in, c_out, size in ((64, 64, 28), (64, 64, 14), (1, 64, 28), (64, 2, 28), (2, 64, 14), (64, 4, 14)):
        x, wt = _draw(rng, (c_in, 2, size, size)), _draw(rng, (c_out, c_in, 3, 3))
        gy = _draw(rng, (c_out, 2, size, size))
        x64, w64, gy64 = (a.astype(np.float64) for a in (x, wt, gy))
        _close(conv_jit.forward(x, wt, True), ref_conv.forward(x64, w64))
        for got, want in zip(conv_jit.backward(x, wt, gy), ref_conv.backward(x64, w64, gy64)):
            _close(got, want)


def test_the_padded_grid_shares_borders_and_puts_every_rows_first_anchor_on_a_cache_line():
    """Layout (``conv_grid.Grid``'s docstring): pixel (n, r, c) at first_anchor + (n·Hp + r)·Wp + c with Hp, Wp =
    H + p, W + p, zeros everywhere else; and the kernels' vector loads of the gradient's anchors and stores of the
    outputs run a fifth faster aligned (benchmarks/RESULTS.md), so the buffers are placed by hand (NumPy promises
    16 bytes)."""
    rng = np.random.default_rng(3)
    for n, h, w, k in ((2, 28, 28, 3), (1, 14, 14, 3), (3, 9, 8, 5), (1, 5, 5, 1)):
        grid = conv_grid.Grid(n, h, w, k)
        p = k // 2
        assert (grid.hp, grid.wp, grid.first_anchor) == (h + p, w + p, p * (w + p) + p)
        assert grid.ld % conv_grid.ROW_QUANTUM == 0 and grid.ld % conv_jit.LANES == 0
        assert grid.ld >= grid.n_end + grid.reach
        for c in (1, 3, 16):
            x = _draw(rng, (c, n, h, w))
            padded = grid.padded(x)
            for row in range(c):
                assert padded[row, grid.first_anchor:].ctypes.data % conv_grid.ALIGN == 0
            want = np.zeros_like(padded)
            for i in range(n):
                for r in range(h):
                    at = grid.first_anchor + (i * grid.hp + r) * grid.wp
                    want[:, at:at + w] = x[:, i, r]
            np.testing.assert_array_equal(padded, want)
    for first in range(20):
        assert conv_grid.aligned_empty((3, 32), first=first).reshape(-1)[first:].ctypes.data % conv_grid.ALIGN == 0


@needs_jit
def test_reads_a_strided_view_and_makes_only_the_gradients_asked_for():
    rng = np.random.default_rng(4)
    x_nchw = _draw(rng, (3, 16, 9, 8))
    view = x_nchw.transpose(1, 0, 2, 3)  # an NCHW batch seen as CNHW, read in place
    wt, gy = _draw(rng, (16, 16, 3, 3)), _draw(rng, (16, 3, 9, 8))
    _close(conv_jit.forward(view, wt), ref_conv.forward(view.astype(np.float64), wt.astype(np.float64)))
    gx, gw = conv_jit.backward(view, wt, gy, need_x=False)
    assert gx is None
    _close(gw, ref_conv.backward(view.astype(np.float64), wt.astype(np.float64), gy.astype(np.float64))[1])
    assert conv_jit.backward(view, wt, gy, need_w=False)[1] is None


@pytest.mark.parametrize("c_in, c_out, k, dtype, own", [
    (64, 64, 3, np.float32, True), (1, 64, 3, np.float32, True), (64, 2, 3, np.float32, True),  # RealNVP
    (2, 256, 3, np.float32, False), (256, 4, 3, np.float32, False), (256, 256, 1, np.float32, False),  # Glow
    (64, 64, 1, np.float32, False),  # 1x1: BLAS's plain GEMM
    (64, 64, 3, np.float64, False),  # float64 (the gradient checks): BLAS
])
def test_the_cpu_family_runs_its_own_kernels_on_realnvps_convolutions_only(c_in, c_out, k, dtype, own, monkeypatch):
    assert cpu_conv.own_kernels_run(c_in, c_out, k, dtype) is (own and jit.PAYS)
    monkeypatch.setattr(jit, "PAYS", False)  # a CPU no vector width was chosen for (Arm, older x86): the BLAS paths
    assert not cpu_conv.own_kernels_run(c_in, c_out, k, dtype)
    monkeypatch.setattr(jit, "PAYS", True)
    monkeypatch.setattr(jit, "AVAILABLE", False)  # where this process cannot compile: the BLAS paths, always
    assert not cpu_conv.own_kernels_run(c_in, c_out, k, dtype)


@pytest.mark.parametrize("c_in, c_out, k, dtype, thin", [
    (2, 256, 3, np.float32, True), (4, 256, 3, np.float32, True),  # Glow's first conv of each coupling network
    (5, 256, 3, np.float32, False),  # 45 unfolded rows: past DIRECT_MAX_DEPTH
    (256, 4, 3, np.float32, False), (2, 256, 1, np.float32, False),  # the thin side is the output; a 1x1 conv
    (2, 256, 3, np.float64, False),  # float64: BLAS
])
def test_a_thin_input_into_a_wide_output_runs_the_direct_kernel_with_its_epilogue(c_in, c_out, k, dtype, thin,
                                                                                  monkeypatch):
    """kernels/cpu/conv.py's forward with relu_bias takes conv_jit.thin_forward where the rule says (and no other
    own path runs), C-ordered and equal to the twin's bias + ReLU after BLAS; never without the JIT, nor on a CPU
    no vector width was chosen for (where it still computes the same, as checked here)."""
    assert cpu_conv.thin_forward_runs(c_in, c_out, k, dtype) is (thin and jit.PAYS)
    if thin and jit.AVAILABLE:  # the kernel itself runs (and is checked) on any CPU that compiles it
        monkeypatch.setattr(jit, "PAYS", True)
        called = []
        monkeypatch.setattr(conv_jit, "thin_forward", lambda *a, _f=conv_jit.thin_forward: called.append(1) or _f(*a))
        rng = np.random.default_rng(13)
        x, wt, b = _draw(rng, (c_in, 3, 5, 6)), _draw(rng, (c_out, c_in, k, k)), _draw(rng, c_out)
        y = cpu_conv.forward(x, wt, True, relu_bias=b)
        assert called and y.flags.c_contiguous
        _close(y, ref_conv.forward(x.astype(np.float64), wt.astype(np.float64), True,
                                   relu_bias=b.astype(np.float64)))
        x[1, 2, 3, 4] = np.nan  # max(NaN + b, 0) stays NaN, and only the pixels whose window holds it
        y = cpu_conv.forward(x, wt, True, relu_bias=b)
        assert np.isnan(y[:, 2, 2:5, 3:6]).all() and np.isnan(y).sum() == c_out * 9
    monkeypatch.setattr(jit, "PAYS", False)
    assert not cpu_conv.thin_forward_runs(c_in, c_out, k, dtype)


@needs_jit
def test_the_dispatched_conv_runs_them_and_agrees_with_blas():
    rng = np.random.default_rng(8)
    x, wt, gy = _draw(rng, (64, 2, 14, 14)), _draw(rng, (64, 64, 3, 3)), _draw(rng, (64, 2, 14, 14))
    _close(cpu_conv.forward(x, wt), cpu_conv.shifted_forward(x, wt))
    for got, want in zip(cpu_conv.backward(x, wt, gy), cpu_conv.shifted_backward(x, wt, gy)):
        _close(got, want)


def test_ranges_cut_a_range_in_whole_steps():
    assert threads.ranges(0, 256, 64, parts=2) == [(0, 128), (128, 256)]
    assert threads.ranges(0, 192, 64, parts=2) == [(0, 64), (64, 192)]
    assert threads.ranges(0, 64, 64, parts=2) == [(0, 64)]  # one step: one part, no empty one
    assert threads.ranges(16, 100, 16, parts=3) == [(16, 48), (48, 80), (80, 100)]  # 6 steps, the last short
    pieces = threads.ranges(0, 1000, 16, parts=4)
    assert pieces[0][0] == 0 and pieces[-1][1] == 1000
    assert all(lo % 16 == 0 and hi > lo for lo, hi in pieces)
    assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:]))


def test_split_runs_every_part_once_and_returns_the_workers_errors():
    seen, lock = [], threading.Lock()

    def record(i):
        with lock:
            seen.append((i, threading.get_ident()))

    parts = [(i,) for i in range(threads.THREADS)]
    threads.split(record, parts)
    assert sorted(i for i, _ in seen) == list(range(threads.THREADS))
    assert seen and threading.get_ident() in {ident for _, ident in seen}  # the caller takes a part itself

    def fail(i):
        if i == threads.THREADS - 1:
            raise ValueError("part failed")

    with pytest.raises(ValueError, match="part failed"):
        threads.split(fail, parts)
    threads.split(record, parts)  # the pool still works after an error
    with pytest.raises(ValueError, match="parts for"):
        threads.split(record, [(i,) for i in range(threads.THREADS + 2)])


def test_a_split_interrupted_while_waiting_does_not_leave_answers_for_the_next():
    """Ctrl-C while the caller waits for its workers: their late answers must not end the next split early."""
    pool = threads.Pool(1)
    release, finished = threading.Event(), []

    def slow(i):  # the caller's own part returns at once, the worker's waits to be released
        if i == 1:
            release.wait(5)
        finished.append(i)

    class InterruptedOnce:  # the caller's first wait is "interrupted", as KeyboardInterrupt would
        def __init__(self, answers):
            self.answers, self.interrupted = answers, False

        def put(self, item):
            self.answers.put(item)

        def get(self):
            if not self.interrupted:
                self.interrupted = True
                raise KeyboardInterrupt
            return self.answers.get()

    pool.done = InterruptedOnce(pool.done)
    with pytest.raises(KeyboardInterrupt):
        pool.split(slow, [(0,), (1,)])
    release.set()  # the interrupted split's worker now answers, late

    def record(i):
        finished.append(("next", i))

    pool.split(record, [(0,), (1,)])
    assert ("next", 1) in finished  # the next split waited for its own worker, not the stale answer


def test_a_forked_child_gets_a_pool_of_its_own():
    """A pool's worker threads do not survive fork: a child must start its own rather than wait on none."""
    import multiprocessing
    threads.split(lambda i: None, [(i,) for i in range(threads.THREADS)])  # the parent's pool exists
    if threads.THREADS < 2 or "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("needs two threads and fork")
    context = multiprocessing.get_context("fork")
    child = context.Process(target=threads.split, args=(print, [("",)] * threads.THREADS))
    child.start()
    child.join(30)
    alive = child.is_alive()
    if alive:
        child.kill()
    assert not alive and child.exitcode == 0


@pytest.mark.parametrize("features, lanes", [
    ({"avx512f": True, "avx2": True, "fma": True}, 16),  # Xeon, Zen 4/5: 32 registers of 16 floats
    ({"avx512f": False, "avx2": True, "fma": True}, 8),  # Zen 3, Haswell: 16 registers of 8
    ({"avx2": True}, None), ({"neon": True}, None),  # AVX2 without FMA; an Arm core
    ({}, None),  # features llvmlite could not name
])
def test_the_vector_width_and_blocks_come_from_the_cpus_features(features, lanes):
    """Read at run time, never assumed; where no width is chosen the convolutions keep BLAS (jit.PAYS)."""
    assert jit.vector_lanes(features) == lanes


@pytest.mark.parametrize("lanes", ["8", "16"])
def test_each_vector_width_computes_the_convolution_and_its_gradients(lanes):
    """Both builds on this machine (NFLOW_VECTOR_LANES forces one in a fresh process; the CPU needs only run the
    narrower or emulate the wider): blocks sized to the width, and the own path's forward with the bias + ReLU,
    relu_backward and a thin input's forward against the float64 twin."""
    script = textwrap.dedent("""
        import numpy as np
        from nflow.kernels.cpu import conv_grid, conv_jit, gemm_ir, jit
        from nflow.kernels.reference import conv as ref
        rng = np.random.default_rng(5)
        width, registers = WIDTH, {16: 32, 8: 16}[WIDTH]  # AVX-512's 32 vector registers, AVX2's 16
        assert jit.LANES == width and gemm_ir.NR == gemm_ir.NV * width
        # the accumulators, the vectors loaded beside them and one broadcast fit in the registers
        assert gemm_ir.MR * gemm_ir.NV + gemm_ir.NV + 1 <= registers
        assert gemm_ir.MO * gemm_ir.NK + gemm_ir.MO + 1 <= registers
        for n, h, w, k in ((2, 28, 28, 3), (3, 9, 8, 5), (1, 7, 7, 3)):  # rows' first anchors on a cache line
            grid = conv_grid.Grid(n, h, w, k)
            buffer = grid.padded(rng.standard_normal((3, n, h, w)).astype(np.float32))
            assert all(buffer[r, grid.first_anchor:].ctypes.data % conv_grid.ALIGN == 0 for r in range(3))
        for c, o in ((16, 16), (2, 16), (16, 2), (2, 256)):
            x, w = rng.standard_normal((c, 3, 7, 6)), rng.standard_normal((o, c, 3, 3)) / 4
            b, gy = rng.standard_normal(o), rng.standard_normal((o, 3, 7, 6))
            f = lambda *a: [v.astype(np.float32) for v in a]
            y = conv_jit.thin_forward(*f(x, w, b)) if o > 128 else conv_jit.forward(*f(x, w), True, relu_bias=f(b)[0])
            want = ref.forward(x, w, True, relu_bias=b)
            assert np.abs(y - want).max() <= 1e-4 * max(1, np.abs(want).max()), (c, o)
            if o <= 128:
                got = conv_jit.relu_backward(*f(x, w), y, *f(gy))
                for a, e in zip(got, ref.relu_backward(x, w, y.astype(np.float64), gy)):
                    assert np.abs(a - e).max() <= 1e-4 * max(1, np.abs(e).max()), (c, o)
        print("ok")
    """).replace("WIDTH", lanes)
    env = dict(os.environ, NFLOW_VECTOR_LANES=lanes)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_a_vector_width_other_than_8_or_16_is_ignored_with_a_sentence():
    """A typo in the environment does not stop the import: one warning, and the CPU's own width."""
    def lanes(**setting):
        env = {k: v for k, v in os.environ.items() if k != "NFLOW_VECTOR_LANES"} | setting
        return subprocess.run([sys.executable, "-c", "from nflow.kernels.cpu import jit; print(jit.LANES)"], env=env,
                              capture_output=True, text=True, timeout=120)
    done, unset = lanes(NFLOW_VECTOR_LANES="12"), lanes()
    assert done.returncode == 0 and done.stdout == unset.stdout and unset.stdout.strip() in ("8", "16")
    assert ("NFLOW_VECTOR_LANES='12' ignored: nflow's micro-kernels are built for 8 or 16 floats per vector"
            in done.stderr)


def test_without_a_working_jit_the_probe_says_why(monkeypatch):
    """Where IR cannot be compiled (an llvmlite without opaque pointers, no native target), the probe reports it in a
    sentence and the convolutions keep their BLAS paths (the rule reads jit.AVAILABLE)."""
    def refuse(ir, name, argtypes):
        raise RuntimeError("no native target")

    monkeypatch.setattr(jit, "compile_function", refuse)
    available, why = jit._probe()
    assert not available and "cannot compile LLVM IR" in why and "no native target" in why
