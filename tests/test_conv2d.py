"""conv2d (stride 1, 'same' zero padding, odd k) against a direct nested-loop convolution written here.

The reference is the definition, one multiply-add at a time, with its adjoints derived by hand:

    y[n, o, i, j]  = b[o] + Σ_c Σ_di Σ_dj w[o, c, di, dj] · x[n, c, i + di - p, j + dj - p]     (p = k // 2)
    dx[n, c, i + di - p, j + dj - p] += w[o, c, di, dj] · gy[n, o, i, j]
    dw[o, c, di, dj]                 += x[n, c, i + di - p, j + dj - p] · gy[n, o, i, j]
    db[o]                            += gy[n, o, i, j]

(terms whose x index falls outside the image are the zero padding and are skipped).
"""
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import nflow
import nflow.functional as F
from nflow import Tensor
from flow_helpers import gradcheck  # nflow.gradcheck, drawing another point where one sits on a kink


def _taps(h, w, k):
    """Every (i, j, di, dj, ii, jj): output pixel, kernel tap and the input pixel it reads, inside the image."""
    p = k // 2
    for i in range(h):
        for j in range(w):
            for di in range(k):
                for dj in range(k):
                    ii, jj = i + di - p, j + dj - p
                    if 0 <= ii < h and 0 <= jj < w:
                        yield i, j, di, dj, ii, jj


def conv_reference(x, w, b):
    n, c_in, h, wd = x.shape
    c_out, _, k, _ = w.shape
    y = np.zeros((n, c_out, h, wd))
    for s in range(n):
        for o in range(c_out):
            y[s, o] += b[o]
            for c in range(c_in):
                for i, j, di, dj, ii, jj in _taps(h, wd, k):
                    y[s, o, i, j] += w[o, c, di, dj] * x[s, c, ii, jj]
    return y


def conv_reference_grads(x, w, gy):
    n, c_in, h, wd = x.shape
    c_out, _, k, _ = w.shape
    dx, dw, db = np.zeros_like(x), np.zeros_like(w), np.zeros(c_out)
    for s in range(n):
        for o in range(c_out):
            db[o] += gy[s, o].sum()
            for c in range(c_in):
                for i, j, di, dj, ii, jj in _taps(h, wd, k):
                    dx[s, c, ii, jj] += w[o, c, di, dj] * gy[s, o, i, j]
                    dw[o, c, di, dj] += x[s, c, ii, jj] * gy[s, o, i, j]
    return dx, dw, db


def test_reference_itself_on_a_hand_worked_example():
    """The reference must be right before it judges anything: a 3x3 image, a 3x3 kernel, worked by hand."""
    x = np.arange(9.0).reshape(1, 1, 3, 3)          # [[0 1 2] [3 4 5] [6 7 8]]
    w = np.zeros((1, 1, 3, 3))
    w[0, 0, 0, 1] = 1.0                               # reads the pixel above
    w[0, 0, 1, 2] = 10.0                              # reads the pixel to the right
    y = conv_reference(x, w, np.array([0.5]))
    expected = np.array([[0 + 10 * 1, 0 + 10 * 2, 0 + 0],
                         [0 + 10 * 4, 1 + 10 * 5, 2 + 0],
                         [3 + 10 * 7, 4 + 10 * 8, 5 + 0]]) + 0.5
    np.testing.assert_array_equal(y[0, 0], expected)


CASES = dict(n=st.integers(1, 2), c_in=st.integers(1, 3), c_out=st.integers(1, 3),
             h=st.integers(1, 5), w=st.integers(1, 5), k=st.sampled_from([1, 3, 5]),
             seed=st.integers(0, 2**31 - 1))


def _draw(n, c_in, c_out, h, w, k, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c_in, h, w))
    wt = rng.standard_normal((c_out, c_in, k, k))
    b = rng.standard_normal(c_out)
    gy = rng.standard_normal((n, c_out, h, w))
    return x, wt, b, gy


@settings(max_examples=80)
@given(**CASES)
# every path of ops/conv.py, in every run: 1x1 (no unfolding), fewer output channels (the output side is unfolded),
# more (the input side), as many with a backward to follow (the output side)
@example(n=2, c_in=2, c_out=3, h=3, w=4, k=1, seed=0)
@example(n=2, c_in=3, c_out=1, h=3, w=4, k=3, seed=1)
@example(n=2, c_in=1, c_out=3, h=3, w=4, k=5, seed=2)
@example(n=2, c_in=2, c_out=2, h=4, w=3, k=3, seed=3)
def test_forward_and_all_gradients_match_the_nested_loops(n, c_in, c_out, h, w, k, seed):
    x, wt, b, gy = _draw(n, c_in, c_out, h, w, k, seed)
    tx, tw, tb = (Tensor(a.copy(), requires_grad=True) for a in (x, wt, b))
    y = F.conv2d(tx, tw, tb)
    np.testing.assert_allclose(y.data, conv_reference(x, wt, b), rtol=1e-12, atol=1e-12)
    y.backward(gy)
    dx, dw, db = conv_reference_grads(x, wt, gy)
    np.testing.assert_allclose(tx.grad, dx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(tw.grad, dw, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(tb.grad, db, rtol=1e-12, atol=1e-12)

    # without a bias, and with only some inputs requiring grad
    tx2, tw2 = Tensor(x.copy(), requires_grad=True), Tensor(wt.copy())
    y2 = F.conv2d(tx2, tw2)
    np.testing.assert_allclose(y2.data, conv_reference(x, wt, np.zeros(c_out)), rtol=1e-12, atol=1e-12)
    y2.backward(gy)
    np.testing.assert_allclose(tx2.grad, dx, rtol=1e-12, atol=1e-12)
    assert tw2.grad is None


@settings(max_examples=25)
@given(**CASES)
def test_gradients_through_gradcheck(n, c_in, c_out, h, w, k, seed):
    x, wt, b, _ = _draw(n, c_in, c_out, h, w, k, seed)
    inputs = [Tensor(a, requires_grad=True) for a in (x, wt, b)]
    # a nonlinearity after the conv so the check sees more than a linear map
    assert gradcheck(lambda s, t, u: F.tanh(F.conv2d(s, t, u)), inputs, seed=seed)


@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("c_in, c_out, output_side", [(3, 1, True), (4, 2, True), (1, 3, False), (2, 2, False)])
def test_both_layouts_match_the_nested_loops(c_in, c_out, output_side, k):
    """conv2d unfolds the side with fewer channels; each layout, forced here by the channel counts, is exact."""
    from nflow.kernels.reference.conv import unfolds_output
    assert unfolds_output(c_in, c_out, k) is output_side
    x, wt, b, gy = _draw(2, c_in, c_out, 4, 6, k, seed=11)
    with nflow.backend("numpy"):  # the im2col twin, which has the two sides
        tx, tw, tb = (Tensor(a.copy(), requires_grad=True) for a in (x, wt, b))
        y = F.conv2d(tx, tw, tb)
        np.testing.assert_allclose(y.data, conv_reference(x, wt, b), rtol=1e-12, atol=1e-12)
        y.backward(gy)
    for got, want in zip((tx.grad, tw.grad, tb.grad), conv_reference_grads(x, wt, gy)):
        assert got.flags.c_contiguous
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("c_in, c_out", [(3, 1), (1, 3), (2, 2)])
def test_channel_major_layout_matches_the_nested_loops(c_in, c_out, k, backend):
    """layout="CNHW" takes and returns (C, N, H, W): the same convolution, the batch and channel axes swapped."""
    x, wt, b, gy = _draw(2, c_in, c_out, 4, 5, k, seed=12)
    swap = (1, 0, 2, 3)
    with nflow.backend(backend):
        tx = Tensor(x.transpose(swap).copy(), requires_grad=True)
        tw, tb = Tensor(wt.copy(), requires_grad=True), Tensor(b.copy(), requires_grad=True)
        y = F.conv2d(tx, tw, tb, layout="CNHW")
        assert y.shape == (c_out, 2, 4, 5)
        np.testing.assert_allclose(y.data.transpose(swap), conv_reference(x, wt, b), rtol=1e-12, atol=1e-12)
        y.backward(gy.transpose(swap).copy())
    dx, dw, db = conv_reference_grads(x, wt, gy)
    np.testing.assert_allclose(tx.grad.transpose(swap), dx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(tw.grad, dw, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(tb.grad, db, rtol=1e-12, atol=1e-12)


def test_channel_major_layout_reads_strided_views():
    """An NCHW tensor seen through transpose(1, 0, 2, 3) is a valid CNHW input (no copy needed first)."""
    x, wt, b, _ = _draw(2, 2, 3, 5, 4, 3, seed=13)
    for backend in ("numpy", "numba"):
        with nflow.backend(backend):
            y = F.conv2d(F.transpose(Tensor(x), (1, 0, 2, 3)), Tensor(wt), Tensor(b), layout="CNHW")
        np.testing.assert_allclose(y.data.transpose(1, 0, 2, 3), conv_reference(x, wt, b), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("c", [1, 3])
def test_equal_channels_unfold_by_what_follows(c, monkeypatch):
    """With C_in = C_out, the im2col twin unfolds the input side for a forward alone and the output side for a
    forward that backward follows (the op says which); both must be the same convolution."""
    from nflow.kernels.reference import conv as ref_conv
    assert not ref_conv.unfolds_output(c, c, 3) and ref_conv.unfolds_output(c, c, 3, backward_follows=True)
    assert not ref_conv.unfolds_output(c, c, 1, backward_follows=True)  # nothing to unfold for k = 1
    told = []
    forward = ref_conv.forward
    monkeypatch.setattr(ref_conv, "forward", lambda x, w, backward_follows: told.append(backward_follows)
                        or forward(x, w, backward_follows))
    x, wt, b, gy = _draw(2, c, c, 4, 5, 3, seed=14)
    with nflow.backend("numpy"):
        with nflow.no_grad():
            y_alone = F.conv2d(Tensor(x), Tensor(wt), Tensor(b)).data
        tx = Tensor(x.copy(), requires_grad=True)
        y_train = F.conv2d(tx, Tensor(wt), Tensor(b))
    assert told == [False, True]
    want = conv_reference(x, wt, b)
    np.testing.assert_allclose(y_alone, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y_train.data, want, rtol=1e-12, atol=1e-12)
    y_train.backward(gy)
    np.testing.assert_allclose(tx.grad, conv_reference_grads(x, wt, gy)[0], rtol=1e-12, atol=1e-12)


def test_float32_agrees_with_float64_to_float32_rounding():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 6, 5))
    w = rng.standard_normal((4, 3, 3, 3))
    y64 = F.conv2d(Tensor(x), Tensor(w)).data
    y32 = F.conv2d(Tensor(x.astype(np.float32)), Tensor(w.astype(np.float32))).data
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, y64, rtol=1e-5, atol=1e-5)


def test_clear_errors():
    x = Tensor(np.zeros((2, 3, 5, 5)))
    with pytest.raises(ValueError, match=r"expects 4 input channels, input \(2, 3, 5, 5\) \(NCHW\) has 3"):
        F.conv2d(x, Tensor(np.zeros((2, 4, 3, 3))))
    with pytest.raises(ValueError, match="odd k"):
        F.conv2d(x, Tensor(np.zeros((2, 3, 2, 2))))
    with pytest.raises(ValueError, match="odd k"):
        F.conv2d(x, Tensor(np.zeros((2, 3, 3, 1))))  # not square
    with pytest.raises(ValueError, match=r"input must be \(N, C, H, W\), got shape \(3, 5, 5\)"):
        F.conv2d(Tensor(np.zeros((3, 5, 5))), Tensor(np.zeros((2, 3, 3, 3))))
    with pytest.raises(ValueError, match=r"bias must have shape \(2,\)"):
        F.conv2d(x, Tensor(np.zeros((2, 3, 3, 3))), Tensor(np.zeros(3)))
    with pytest.raises(TypeError, match="dtypes differ"):
        F.conv2d(x, Tensor(np.zeros((2, 3, 3, 3), dtype=np.float32)))
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        nflow.nn.Conv2d(3, 2, kernel_size=4)
    with pytest.raises(ValueError, match="layout must be one of"):
        F.conv2d(x, Tensor(np.zeros((2, 3, 3, 3))), layout="NHWC")
    with pytest.raises(ValueError, match=r"expected input \(3, N, H, W\) \(CNHW\), got shape \(2, 3, 5, 5\)"):
        nflow.nn.Conv2d(3, 2, layout="CNHW")(x)
