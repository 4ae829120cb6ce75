"""Glow's invertible 1x1 convolution (Kingma & Dhariwal 2018, §3.2): a learned channel permutation.

    y[:, :, i, j] = W x[:, :, i, j],      log|det| = H · W_px · log|det W|         (eq. 9; cost O(C³) + O(N C² HW))

Plain form: W is a free C×C matrix, initialised as a random rotation; log|det W| and the inverse weight
are computed in float64 whatever the model's dtype, and the inverse weight is cached until W changes.

LU form (eq. 10): W = P · L · (U + diag(sign(s) · exp(log|s|))), P fixed, L unit lower triangular,
U strictly upper, sign(s) fixed, log|s| learned; then log|det W| = Σ log|s|, O(C) instead of O(C³).

This file holds the layer, the LU decomposition that starts it, and its two graph nodes: the LU weight is
built by one node (kernel family ``lu``) and the 1x1 map is one node (family ``invconv``) working on NCHW
arrays directly. The equations of both kernels and their gradients are in their NumPy twins,
``kernels/reference/lu.py`` and ``kernels/reference/invconv.py``.
"""
import numpy as np

import nflow.functional as F
from nflow.backend import get_array_module
from nflow.flows.base import Flow, check_input, zero_logdet
from nflow.nn.module import Parameter, new_array
from nflow.ops.kernel_function import KernelFunction
from nflow.ops.linalg import logabsdet, matrix_inverse
from nflow.random import default_rng
from nflow.tensor import Tensor, is_grad_enabled


def random_rotation(channels, rng=None):
    """An orthogonal matrix from the QR decomposition of a Gaussian one (Glow's initialisation)."""
    q, _ = np.linalg.qr((rng or default_rng()).standard_normal((channels, channels)))
    return q


def lu_decompose(w):
    """Return (P, L, U) with P a permutation matrix, L unit lower triangular, U upper triangular, W = P L U.

    Doolittle's algorithm with partial pivoting, in plain NumPy: at column k, swap up the row with the largest
    |entry| (stability), store the multipliers below the pivot in L and eliminate. Cost O(C³); run once, to
    start the LU parameters from a random rotation.
    """
    w = np.asarray(w, dtype=np.float64)
    n = w.shape[0]
    u = w.copy()
    lower = np.eye(n)
    perm = np.arange(n)
    for k in range(n - 1):
        pivot = k + int(np.argmax(np.abs(u[k:, k])))
        if pivot != k:
            u[[k, pivot], :] = u[[pivot, k], :]
            lower[[k, pivot], :k] = lower[[pivot, k], :k]
            perm[[k, pivot]] = perm[[pivot, k]]
        if u[k, k] == 0:
            continue  # singular column: nothing to eliminate
        factors = u[k + 1:, k] / u[k, k]
        lower[k + 1:, k] = factors
        u[k + 1:, k:] -= np.outer(factors, u[k, k:])
    # The rows were swapped as ``perm`` records: W[perm] = L U, that is W = P L U with P[perm[i], i] = 1.
    p = np.zeros((n, n))
    p[perm, np.arange(n)] = 1.0
    return p, lower, np.triu(u)


class InvConv1x1(Flow):
    """Invertible 1x1 convolution; ``lu=True`` for the LU-decomposed parameterisation."""

    def __init__(self, channels, lu=True, dtype=np.float32, rng=None):
        super().__init__()
        self.channels, self.lu = channels, lu
        w = random_rotation(channels, rng)
        if not lu:
            self.weight = Parameter(new_array(w.astype(dtype)))
        else:
            p, lower, upper = lu_decompose(w)
            s = np.diag(upper)
            self.register_buffer("permutation", new_array(p.astype(dtype)))
            self.register_buffer("sign_s", new_array(np.sign(s).astype(dtype)))
            self.lower = Parameter(new_array(np.tril(lower, -1).astype(dtype)))
            self.upper = Parameter(new_array(np.triu(upper, 1).astype(dtype)))
            self.log_s = Parameter(new_array(np.log(np.abs(s)).astype(dtype)))
        self._inverse_cache = None  # (copy of W it was computed from, W⁻¹)

    # -- the weight and its log-det -----------------------------------------------------------------
    def weight_matrix(self):
        """W as a Tensor in the graph (for LU: built from P, L, U, sign(s), log|s|)."""
        if not self.lu:
            return self.weight
        # The node reads only the strict triangles of ``lower`` and ``upper``: the other entries get no gradient.
        return lu_weight(self.permutation, self.lower, self.upper, self.sign_s, self.log_s)

    def log_abs_det(self):
        """log|det W| (a 0-d Tensor): Σ log|s| for LU, float64 slogdet otherwise."""
        return F.sum(self.log_s) if self.lu else logabsdet(self.weight)

    def _inverse_weight(self, w):
        # Reuse W⁻¹ while W is unchanged (sampling calls inverse many times); recompute after any update.
        if is_grad_enabled() and w.requires_grad:
            return matrix_inverse(w)
        cached = self._inverse_cache
        if cached is None or cached[0].shape != w.shape or not bool((cached[0] == w.data).all()):
            self._inverse_cache = (w.data.copy(), matrix_inverse(Tensor(w.data)).data)
        return Tensor(self._inverse_cache[1])

    def _check(self, x):
        check_input(x, "InvConv1x1", expected_ndim=4, channels=self.channels)

    def forward(self, x):
        self._check(x)
        w = self.weight_matrix()
        y = invconv(x, w)
        logdet = self.log_abs_det() * float(x.shape[2] * x.shape[3])
        return y, logdet + zero_logdet(x)

    def inverse(self, y):
        self._check(y)
        w_inv = self._inverse_weight(self.weight_matrix())
        x = invconv(y, w_inv)
        logdet = self.log_abs_det() * float(-y.shape[2] * y.shape[3])
        return x, logdet + zero_logdet(y)

    def _after_load_state(self):
        """A loaded weight must be invertible: refuse a singular one with a clear error."""
        self._inverse_cache = None
        if self.lu:
            xp = get_array_module(self.log_s.data)
            # (a non-finite log|s| never gets here: Module.load_state_dict refuses NaN and inf in any entry)
            # log|det W| = Σ log|s| holds only for sign(s) = ±1 and P a permutation (|det P| = 1)
            if not bool((xp.abs(self.sign_s) == 1).all()):
                raise ValueError(f"InvConv1x1(lu=True): loaded sign(s) must be ±1, got {self.sign_s.tolist()}; "
                                 "W would be singular or its log-det wrong")
            p = self.permutation
            if not (bool(((p == 0) | (p == 1)).all()) and bool((p.sum(axis=0) == 1).all())
                    and bool((p.sum(axis=1) == 1).all())):
                raise ValueError(f"InvConv1x1(lu=True): the loaded permutation is not a permutation matrix "
                                 f"(one 1 in each row and column of a {self.channels}x{self.channels} 0/1 matrix)")
            return
        w = self.weight.data.astype(np.float64)
        xp = get_array_module(w)
        sign, logabs = xp.linalg.slogdet(w)
        if float(sign) == 0 or not np.isfinite(float(logabs)):
            raise ValueError(f"InvConv1x1: the loaded {self.channels}x{self.channels} weight is singular "
                             "(det W = 0); it cannot be inverted")
        cond = np.linalg.cond(np.asarray(w.get() if hasattr(w, "get") else w))
        if not np.isfinite(cond) or cond > 1 / np.finfo(self.weight.dtype).eps:
            raise ValueError(f"InvConv1x1: the loaded weight is numerically singular in {self.weight.dtype} "
                             f"(condition number {cond:.3g})")


# ----------------------------------------------------------------------------------------- graph nodes
class InvConv(KernelFunction):
    """(x, W) -> y with y[n, :, h, w] = W x[n, :, h, w] on NCHW arrays; no layout copies.

    Backward: ∂L/∂x = Wᵀ gy per pixel, ∂L/∂W = Σ_{n, h, w} gy xᵀ. Keeps: x and W.
    Cost: 2·N·C²·H·W FLOPs forward, twice that backward. The inverse map is this node with W⁻¹.
    """

    family = "invconv"

    def forward(self, x, w):
        self.saved = (x, w)
        return self.kernel.forward(x, w)

    def backward(self, gy):
        x, w = self.saved
        return self.kernel.backward(x, w, gy)


class LUWeight(KernelFunction):
    """(P, lower, upper, sign(s), log|s|) -> W = P · L · (U + diag(sign(s) · exp(log|s|))).

    L = I + the strictly-lower part of ``lower``, U = the strictly-upper part of ``upper``; the other entries
    of the two parameter matrices are masked away (zero gradient). P and sign(s) are fixed: no gradient.
    Backward, with A = Pᵀ ∂L/∂W and Ũ = U + diag(s): ∂L/∂lower = strictly-lower(A Ũᵀ),
    ∂L/∂upper = strictly-upper(Lᵀ A), ∂L/∂log|s| = diag(Lᵀ A) · s. Keeps: the five inputs (C×C at most).
    """

    family = "lu"

    def forward(self, perm, lower, upper, sign_s, log_s):
        self.saved = (perm, lower, upper, sign_s, log_s)
        return self.kernel.weight(perm, lower, upper, sign_s, log_s)

    def backward(self, gw):
        g_lower, g_upper, g_log_s = self.kernel.weight_backward(*self.saved, gw)
        return None, g_lower, g_upper, None, g_log_s


def invconv(x, w):
    return InvConv()(x, w)


def lu_weight(perm, lower, upper, sign_s, log_s):
    return LUWeight()(perm, lower, upper, sign_s, log_s)
