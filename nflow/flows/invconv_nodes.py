"""Graph nodes for Glow's invertible 1x1 convolution (Kingma & Dhariwal 2018, §3.2): the channel map (eq. 9)
and the LU-parameterised weight (eq. 10).

Each node calls :func:`nflow.kernels.dispatch.kernel` for the current backend's implementation (the NumPy
twin, a Numba kernel or a CUDA kernel; families ``"invconv"`` and ``"lu"``) and backward runs the kernel of the
backend forward ran on. The log-det, H·W·log|det W|, is not a node here: the layer computes log|det W| once
(Σ log|s| for LU, a float64 ``slogdet`` otherwise) and scales it.
"""
from nflow.kernels.dispatch import kernel
from nflow.tensor import Function


class InvConv(Function):
    """(x, W) -> y with y[n, :, h, w] = W x[n, :, h, w] on NCHW arrays; no layout copies.

    Backward: ∂L/∂x = Wᵀ gy per pixel, ∂L/∂W = Σ_{n, h, w} gy xᵀ. Keeps: x and W.
    Cost: 2·N·C²·H·W FLOPs forward, twice that backward. The inverse map is this node with W⁻¹.
    """

    def validate(self, x, w):
        if x.ndim != 4:
            raise ValueError(f"invertible 1x1 convolution: input must be (N, C, H, W), got shape {x.shape}")
        c = x.shape[1]
        if w.shape != (c, c):
            raise ValueError(f"invertible 1x1 convolution: weight must have shape ({c}, {c}) for an input of "
                             f"shape {x.shape}, got {w.shape}")
        if w.dtype != x.dtype:
            raise TypeError(f"invertible 1x1 convolution: dtypes differ: input {x.dtype}, weight {w.dtype}")

    def forward(self, x, w):
        self.saved = (x, w)
        self.kernel = kernel("invconv")  # backward runs the same backend's kernel as forward did
        return self.kernel.forward(x, w)

    def backward(self, gy):
        x, w = self.saved
        return self.kernel.backward(x, w, gy)


class LUWeight(Function):
    """(P, lower, upper, sign(s), log|s|) -> W = P · L · (U + diag(sign(s) · exp(log|s|))).

    L = I + the strictly-lower part of ``lower``, U = the strictly-upper part of ``upper``; the other entries
    of the two parameter matrices are masked away (zero gradient). P and sign(s) are fixed: no gradient.
    Backward, with A = Pᵀ ∂L/∂W and Ũ = U + diag(s): ∂L/∂lower = strictly-lower(A Ũᵀ),
    ∂L/∂upper = strictly-upper(Lᵀ A), ∂L/∂log|s| = diag(Lᵀ A) · s. Keeps: the five inputs (C×C at most).
    """

    def validate(self, perm, lower, upper, sign_s, log_s):
        if log_s.ndim != 1:
            raise ValueError(f"LU weight: log|s| must be a vector (C,), got shape {log_s.shape}")
        c = log_s.shape[0]
        for name, a, shape in (("P", perm, (c, c)), ("lower", lower, (c, c)), ("upper", upper, (c, c)),
                               ("sign(s)", sign_s, (c,))):
            if a.shape != shape:
                raise ValueError(f"LU weight: {name} must have shape {shape} for log|s| of shape ({c},), "
                                 f"got {a.shape}")
            if a.dtype != log_s.dtype:
                raise TypeError(f"LU weight: {name} is {a.dtype} but log|s| is {log_s.dtype}")

    def forward(self, perm, lower, upper, sign_s, log_s):
        self.saved = (perm, lower, upper, sign_s, log_s)
        self.kernel = kernel("lu")
        return self.kernel.weight(perm, lower, upper, sign_s, log_s)

    def backward(self, gw):
        g_lower, g_upper, g_log_s = self.kernel.weight_backward(*self.saved, gw)
        return None, g_lower, g_upper, None, g_log_s


def invconv(x, w):
    return InvConv()(x, w)


def lu_weight(perm, lower, upper, sign_s, log_s):
    return LUWeight()(perm, lower, upper, sign_s, log_s)
