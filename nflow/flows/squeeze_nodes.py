"""Graph nodes for squeeze (RealNVP, Dinh et al. 2017, §3.6; Glow's ``squeeze2d``) and its inverse.

    squeeze:    y[n, 4c + 2di + dj, i, j] = x[n, c, 2i + di, 2j + dj]     (N, C, H, W) -> (N, 4C, H/2, W/2)

Each node calls the current backend's kernel (``kernel("squeeze")``: the NumPy twin, a Numba kernel or a CUDA
kernel). A permutation of the elements: log-det 0 (the layer supplies it), and its Jacobian P is a permutation
matrix with Pᵀ = P⁻¹, so the backward of squeeze is unsqueeze applied to the gradient (the kernel's
``inverse``) and the backward of unsqueeze is squeeze (the kernel's ``forward``). The nodes keep no arrays.
"""
from nflow.kernels.dispatch import kernel
from nflow.kernels.reference.squeeze import BLOCK, FACTOR
from nflow.tensor import Function


class SqueezeForward(Function):
    """x (N, C, H, W) -> (N, 4C, H/2, W/2). Keeps: nothing."""

    def validate(self, x):
        if x.ndim != 4 or x.shape[2] % FACTOR or x.shape[3] % FACTOR:
            raise ValueError(f"squeeze: needs an (N, C, H, W) input with even H and W, got shape {x.shape}")

    def forward(self, x):
        self.kernel = kernel("squeeze")  # backward runs the same backend's kernel as forward did
        return self.kernel.forward(x)

    def backward(self, gy):
        return self.kernel.inverse(gy)  # unsqueeze: the transpose of a permutation is its inverse


class SqueezeInverse(Function):
    """y (N, 4C, H, W) -> (N, C, 2H, 2W). Keeps: nothing."""

    def validate(self, y):
        if y.ndim != 4 or y.shape[1] % BLOCK:
            raise ValueError(f"unsqueeze: needs an (N, C, H, W) input with C a multiple of {BLOCK}, "
                             f"got shape {y.shape}")

    def forward(self, y):
        self.kernel = kernel("squeeze")
        return self.kernel.inverse(y)

    def backward(self, gx):
        return self.kernel.forward(gx)  # squeeze: the transpose of the inverse permutation


def squeeze(x):
    return SqueezeForward()(x)


def unsqueeze(y):
    return SqueezeInverse()(y)
