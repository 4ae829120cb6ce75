"""Which implementation of each kernel family runs on which backend.

Every family module (reference, cpu, cuda) exposes the same functions with the same signatures
(``forward``, ``inverse``, ``forward_backward``, ``inverse_backward``). The table below is the only place
that decides; the ``numpy`` backend always runs the NumPy twin in ``kernels/reference``.
"""
from nflow.backend import get_backend
from nflow.kernels.reference import actnorm as reference_actnorm
from nflow.kernels.reference import affine_coupling as reference_affine_coupling

_TABLE = {
    "affine_coupling": {"numpy": reference_affine_coupling, "numba": reference_affine_coupling,
                        "cupy": reference_affine_coupling},
    "actnorm": {"numpy": reference_actnorm, "numba": reference_actnorm, "cupy": reference_actnorm},
}


def kernel(family):
    """The module implementing ``family`` on the current backend."""
    return _TABLE[family][get_backend()]
