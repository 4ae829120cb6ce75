"""The dense layer as one op: y = act(x Wᵀ + b), act the identity or max(·, 0).

With X the input as an (M, in) matrix (every leading axis folded into M), W (out, in), G = dL/dy as (M, out):

    forward    Y  = X Wᵀ + b            one GEMM (BLAS reads the transposed W in place), the bias added in place
    relu       Y ← max(Y, 0)            in place: the pre-activation is never kept
    backward   G ← G · [Y > 0]          (with the ReLU: Y > 0 exactly where the pre-activation was; in the
                                         incoming gradient itself where the graph lets the op overwrite it)
               dW = Gᵀ X                (out, in): W's own layout
               db = Σ_rows G
               dX = G W

Why one op rather than ``matmul(x, W.T) + b`` then ``relu``: in that chain W's gradient comes out of the
transpose's backward as a transposed *view*, which the graph must copy before it can become ``W.grad`` (a view's
memory may be shared); here dW is a fresh array in W's layout that the graph keeps as it is. For NICE's 19 M
weights that copy was 77 MB a training step (issue 12). The chain also made two more full passes (the bias add
and the ReLU, each into a new array) and kept the ReLU's output besides the GEMM's.
"""
from nflow.backend import get_array_module
from nflow.tensor import Function

ACTIVATIONS = (None, "relu")


class Linear(Function):
    """y = act(x Wᵀ + b) for x (..., in), W (out, in), b (out,) or absent. Keeps: x and W (and y, with the ReLU)."""

    def __init__(self, activation=None):
        if activation not in ACTIVATIONS:
            raise ValueError(f"linear: activation must be one of {ACTIVATIONS}, got {activation!r}")
        self.activation = activation

    def validate(self, x, w, b=None):
        if w.ndim != 2:
            raise ValueError(f"linear: weight must be (out_features, in_features), got shape {w.shape}")
        if x.ndim < 1 or x.shape[-1] != w.shape[1]:
            raise ValueError(f"linear: weight {w.shape} expects inputs (..., {w.shape[1]}), got shape {x.shape}")
        if b is not None and b.shape != (w.shape[0],):
            raise ValueError(f"linear: bias must have shape ({w.shape[0]},), got {b.shape}")
        if x.dtype != w.dtype or (b is not None and b.dtype != x.dtype):
            raise TypeError(f"linear: input and weight dtypes differ: {x.dtype} and {w.dtype}"
                            + (f" (bias {b.dtype})" if b is not None else "") + "; nflow never casts silently")

    def forward(self, x, w, b=None):
        xp = get_array_module(x)
        y = xp.matmul(x.reshape(-1, w.shape[1]), w.T)  # (M, out), a new C-ordered array
        if b is not None:
            y += b
        if self.activation == "relu":
            xp.maximum(y, 0, out=y)  # NaN stays NaN, as in F.relu
            self.saved = (x, w, y)
        else:
            self.saved = (x, w)
        return y.reshape(x.shape[:-1] + (w.shape[0],))

    def backward(self, gy):
        x, w = self.saved[:2]
        out_features, in_features = w.shape
        g = gy.reshape(-1, out_features)
        if self.activation == "relu":  # NaN · 0 stays NaN: a NaN upstream is not hidden
            mask = self.saved[2] > 0
            # in gy itself when nothing else can see it (the walk says so): no new array of gy's size to fill
            g = get_array_module(g).multiply(g, mask, out=g) if self.may_overwrite(0) else g * mask
        needs = self.needs_input_grad
        gx = (g @ w).reshape(x.shape) if needs[0] else None
        gw = g.T @ x.reshape(-1, in_features) if needs[1] else None
        if len(needs) == 2:
            return gx, gw
        gb = g.sum(axis=0) if needs[2] else None
        return gx, gw, gb


def linear(x, w, b=None, activation=None):
    """act(x Wᵀ + b) for x (..., in), W (out, in): see :class:`Linear`."""
    op = Linear(activation)
    return op(x, w) if b is None else op(x, w, b)
