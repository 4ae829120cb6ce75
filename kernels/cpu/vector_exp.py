"""exp(x) in plain float32/float64 arithmetic, so that LLVM can vectorise the Numba loops that call it.

Why not ``math.exp``: Numba lowers it to a call into the C library, one element at a time (there is no SVML
vector library on these machines: ``numba -s`` says ``SVML State: False``). A loop with a call in it is never
vectorised, and the coupling kernels then run at a fraction of memory bandwidth, slower than NumPy, whose
``np.exp`` has its own AVX-512 implementation. Written with only +, ×, floor and an integer shift, the same
loop becomes SIMD code.

The method (Cody & Waite range reduction, as in fdlibm's ``e_exp.c``):

    n = round(x / ln 2),   r = x - n·ln 2  (ln 2 split in a high and a low part, so r is exact),  |r| ≤ ln2 / 2
    exp(x) = 2ⁿ · exp(r),  exp(r) by its Taylor series: degree 13 in float64 (truncation r¹⁴/14! < 4e-18, under
    1 ulp), degree 7 in float32 (r⁸/8! < 6e-9, under 0.1 float32 ulp)
    2ⁿ is built from its bits: a biased exponent k + 1023 shifted into bits 52..62 of a float64 gives 2ᵏ; two
    such factors, since n reaches 1024 near EXP_MAX.

:func:`exp` works in the precision of its argument: a float32 x gets the float32 version (twice the SIMD lanes
and half the polynomial of the float64 one), so a float32 kernel runs in float32 throughout.

Range: exp(x) = +inf above log(largest finite) (as the C library) and 0 below log(smallest normal) (the C
library returns subnormals there: below 2.3e-308 in float64, 1.2e-38 in float32; 2ⁿ then has no normal bit
pattern). Accuracy in between: within 2 ulp of the correctly rounded exp (checked by tests/test_kernels.py).
"""
import math
import struct

import numba
import numpy as np
from numba import njit
from numba.core import types
from numba.extending import overload

# ---- float64
EXP_MAX = 709.782712893384        # log(largest float64): above it exp overflows to +inf
EXP_MIN = -708.3964185322641      # log(smallest normal float64, 2^-1022): below it this exp returns 0
LOG2E = 1.4426950408889634        # 1 / ln 2
LN2_HI = 6.93147180369123816490e-01  # ln 2 = LN2_HI + LN2_LO, LN2_HI with its low 32 bits zero (fdlibm)
LN2_LO = 1.90821492927058770002e-10
EXPONENT_BIAS = 1023
MANTISSA_BITS = 52

# 1/k! for k = 2..13, the Taylor coefficients of exp(r) past 1 + r
_C2, _C3, _C4, _C5 = 1 / 2, 1 / 6, 1 / 24, 1 / 120
_C6, _C7, _C8, _C9 = 1 / 720, 1 / 5040, 1 / 40320, 1 / 362880
_C10, _C11, _C12, _C13 = 1 / 3628800, 1 / 39916800, 1 / 479001600, 1 / 6227020800

# ---- float32 (every constant a float32, so no operation widens to float64)
F32 = np.float32
EXP_MAX_F32 = F32(88.72283)       # log(largest float32)
EXP_MIN_F32 = F32(-87.33654)      # log(smallest normal float32, 2^-126)
LOG2E_F32 = F32(LOG2E)
LN2_HI_F32 = F32(0.693359375)     # ln 2 = LN2_HI_F32 + LN2_LO_F32, the high part exact in 9 bits (Cephes expf)
LN2_LO_F32 = F32(-2.12194440e-4)
EXPONENT_BIAS_F32 = 127
MANTISSA_BITS_F32 = 23
_F1, _F2, _F3, _F4 = F32(1.0), F32(1 / 2), F32(1 / 6), F32(1 / 24)
_F5, _F6, _F7 = F32(1 / 120), F32(1 / 720), F32(1 / 5040)
_F_HALF, _F_ZERO, _F_INF = F32(0.5), F32(0.0), F32(np.inf)


if numba.config.DISABLE_JIT:
    def float64_from_bits(bits):
        """Reinterpret the 64 bits of an integer as a float64 (plain Python, for NUMBA_DISABLE_JIT=1)."""
        return struct.unpack("<d", struct.pack("<q", int(bits)))[0]

    def float32_from_bits(bits):
        """Reinterpret the 32 bits of an integer as a float32 (plain Python, for NUMBA_DISABLE_JIT=1)."""
        return F32(struct.unpack("<f", struct.pack("<i", int(bits)))[0])
else:
    from llvmlite import ir
    from numba.extending import intrinsic

    @intrinsic
    def float64_from_bits(typingctx, bits):
        """Reinterpret the 64 bits of an int64 as a float64 (one LLVM ``bitcast``, no memory traffic)."""
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.DoubleType())
        return types.float64(types.int64), codegen

    @intrinsic
    def float32_from_bits(typingctx, bits):
        """Reinterpret the 32 bits of an int32 as a float32."""
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.FloatType())
        return types.float32(types.int32), codegen


@njit(cache=True, inline="always", error_model="numpy")
def exp64(x):
    """exp(x) for a float64 x; vectorisable (no calls, no data-dependent loops)."""
    if x > EXP_MAX:
        return math.inf
    if x < EXP_MIN:
        return 0.0
    n = math.floor(x * LOG2E + 0.5)
    r = (x - n * LN2_HI) - n * LN2_LO
    p = _C12 + r * _C13
    p = _C11 + r * p
    p = _C10 + r * p
    p = _C9 + r * p
    p = _C8 + r * p
    p = _C7 + r * p
    p = _C6 + r * p
    p = _C5 + r * p
    p = _C4 + r * p
    p = _C3 + r * p
    p = _C2 + r * p
    p = 1.0 + r * (1.0 + r * p)
    # 2ⁿ as two factors 2^(n//2) · 2^(n - n//2): each has a normal bit pattern for every n in [-1022, 1024]
    half = int(n) >> 1
    return (p * float64_from_bits((half + EXPONENT_BIAS) << MANTISSA_BITS)
            * float64_from_bits((int(n) - half + EXPONENT_BIAS) << MANTISSA_BITS))


@njit(cache=True, inline="always", error_model="numpy")
def exp32(x):
    """exp(x) for a float32 x, in float32 arithmetic; vectorisable."""
    if x > EXP_MAX_F32:
        return _F_INF
    if x < EXP_MIN_F32:
        return _F_ZERO
    n = np.floor(x * LOG2E_F32 + _F_HALF)
    r = (x - n * LN2_HI_F32) - n * LN2_LO_F32
    p = _F6 + r * _F7
    p = _F5 + r * p
    p = _F4 + r * p
    p = _F3 + r * p
    p = _F2 + r * p
    p = _F1 + r * (_F1 + r * p)
    k = np.int32(n)
    half = k >> np.int32(1)
    return (p * float32_from_bits((half + np.int32(EXPONENT_BIAS_F32)) << np.int32(MANTISSA_BITS_F32))
            * float32_from_bits((k - half + np.int32(EXPONENT_BIAS_F32)) << np.int32(MANTISSA_BITS_F32)))


def exp(x):
    """exp(x) in the precision of x (float32 or float64). In compiled code this resolves, by the type of x, to
    :func:`exp32` or :func:`exp64`; called from plain Python (NUMBA_DISABLE_JIT=1) it is NumPy's exp."""
    return np.exp(x)


@overload(exp)
def _exp_for_type(x):
    """Compile-time choice by the argument's type (the call inlines after LLVM's optimisation, like any small
    function; ``inline="always"`` here trips a Numba IR check, NumbaIRAssumptionWarning)."""
    if x == types.float32:
        def exp_float32(x):
            return exp32(x)
        return exp_float32
    if x == types.float64:
        def exp_float64(x):
            return exp64(x)
        return exp_float64
    return None
