"""exp(x) in plain float64 arithmetic, so that LLVM can vectorise the Numba loops that call it.

Why not ``math.exp``: Numba lowers it to a call into the C library, one element at a time (there is no SVML
vector library on these machines: ``numba -s`` says ``SVML State: False``). A loop with a call in it is never
vectorised, and the coupling kernels then run at a fraction of memory bandwidth, slower than NumPy, whose
``np.exp`` has its own AVX-512 implementation. Written with only +, ×, floor and an integer shift, the same
loop becomes SIMD code.

The method (Cody & Waite range reduction, as in fdlibm's ``e_exp.c``):

    n = round(x / ln 2),   r = x - n·ln 2  (ln 2 split in a high and a low part, so r is exact),  |r| ≤ ln2 / 2
    exp(x) = 2ⁿ · exp(r),  exp(r) by its Taylor series to degree 13 (truncation r¹⁴/14! < 4e-18: under 1 ulp)
    2ⁿ is built from its bits: a biased exponent k + 1023 shifted into bits 52..62 of a float64 gives 2ᵏ; two
    such factors, since n reaches 1024 near EXP_MAX.

Range: exp(x) = +inf for x > ``EXP_MAX`` (as the C library), and 0 for x < ``EXP_MIN`` (the C library returns
subnormals there, all below 2.3e-308; 2ⁿ for n < -1022 has no normal bit pattern). Accuracy in between:
within 2 ulp of ``math.exp`` (checked by tests/test_kernels.py).
"""
import math
import struct

import numba
from numba import njit

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


if numba.config.DISABLE_JIT:
    def float64_from_bits(bits):
        """Reinterpret the 64 bits of an integer as a float64 (plain Python, for NUMBA_DISABLE_JIT=1)."""
        return struct.unpack("<d", struct.pack("<q", int(bits)))[0]
else:
    from llvmlite import ir
    from numba.core import types
    from numba.extending import intrinsic

    @intrinsic
    def float64_from_bits(typingctx, bits):
        """Reinterpret the 64 bits of an int64 as a float64 (one LLVM ``bitcast``, no memory traffic)."""
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.DoubleType())
        return types.float64(types.int64), codegen


@njit(cache=True, inline="always")
def exp(x):
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
