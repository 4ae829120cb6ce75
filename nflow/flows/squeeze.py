"""Squeeze (RealNVP, Dinh et al. 2017, §3.6; Glow's ``squeeze2d``): each 2×2 spatial block becomes 4 channels.

    y[n, 4c + 2di + dj, i, j] = x[n, c, 2i + di, 2j + dj]     (N, C, H, W) -> (N, 4C, H/2, W/2)

The layer, then its graph nodes (kernel family ``squeeze``; the NumPy twin is ``kernels/reference/squeeze.py``).
A permutation of the elements: log-det 0, and its Jacobian P is a permutation matrix with Pᵀ = P⁻¹, so the
backward of squeeze is unsqueeze applied to the gradient (the kernel's ``inverse``) and the backward of
unsqueeze is squeeze (the kernel's ``forward``). The nodes keep no arrays.
"""
from nflow.flows.base import Flow, check_input, zero_logdet
from nflow.kernels.reference.squeeze import BLOCK, FACTOR
from nflow.ops.kernel_function import KernelFunction


class Squeeze(Flow):
    """C×H×W -> 4C×H/2×W/2 (RealNVP §3.6; Glow): each 2×2 spatial block becomes 4 channels.

    Channel order of the output: c·4 + 2·di + dj for input channel c and block offset (di, dj), i.e.
    ``x.reshape(N, C, H/2, 2, W/2, 2).transpose(0, 1, 3, 5, 2, 4)`` as in Glow's ``squeeze2d``. One kernel pass
    each way (the nodes below; the twin is ``kernels/reference/squeeze.py``).
    """

    def forward(self, x):
        check_input(x, "Squeeze", expected_ndim=4)
        h, w = x.shape[2:]
        if h % FACTOR or w % FACTOR:
            raise ValueError(f"Squeeze: spatial size must be even to fold 2x2 blocks into channels, "
                             f"got input of shape {x.shape} (H={h}, W={w})")
        return squeeze(x), zero_logdet(x)

    def inverse(self, y):
        check_input(y, "Squeeze.inverse", expected_ndim=4)
        if y.shape[1] % BLOCK:
            raise ValueError(f"Squeeze.inverse: channels must be a multiple of {BLOCK}, got input of shape {y.shape}")
        return unsqueeze(y), zero_logdet(y)


# ----------------------------------------------------------------------------------------- graph nodes
class SqueezeForward(KernelFunction):
    """x (N, C, H, W) -> (N, 4C, H/2, W/2). Keeps: nothing."""

    family = "squeeze"

    def forward(self, x):
        return self.kernel.forward(x)

    def backward(self, gy):
        return self.kernel.inverse(gy)  # unsqueeze: the transpose of a permutation is its inverse


class SqueezeInverse(KernelFunction):
    """y (N, 4C, H, W) -> (N, C, 2H, 2W). Keeps: nothing."""

    family = "squeeze"

    def forward(self, y):
        return self.kernel.inverse(y)

    def backward(self, gx):
        return self.kernel.forward(gx)  # squeeze: the transpose of the inverse permutation


def squeeze(x):
    return SqueezeForward()(x)


def unsqueeze(y):
    return SqueezeInverse()(y)
