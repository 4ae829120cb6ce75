"""Every number the kit compares with, and why it is that number.

Two kinds of check. *Same computation, different rounding* (round trips, backends, memory-free backprop, a
float32 layer against its float64 twin): the tolerance is a multiple of the dtype's unit roundoff, relative to the
scale of what is compared. *Analytic against central differences* (log-det against the Jacobian, gradients): in
float64 only, with a step chosen below, and a tolerance from the difference's rounding error.
"""
import numpy as np

EPS = {np.dtype(np.float32): float(np.finfo(np.float32).eps), np.dtype(np.float64): float(np.finfo(np.float64).eps)}

# ------------------------------------------------------------------------------------------------ same map, rounding
# inverse(forward(x)) = x, relative to the scale max(|x|, |y|). float64: 1e-10 leaves ~5·10⁵ ulp for a layer's
# rounding times the conditioning of its inverse, and still sees an inverse that is off by 1e-9 anywhere. float32:
# each layer rounds a few times each way (a net's output, x·s + t, a C×C product, a logit); 16 ulp per leaf layer,
# growing linearly with depth.
ROUND_TRIP_RTOL64 = 1e-10
ROUND_TRIP_ULP_PER_LAYER32 = 16


def round_trip_rtol(dtype, depth):
    """Relative tolerance of a round trip through ``depth`` leaf layers in ``dtype``."""
    dtype = np.dtype(dtype)
    if dtype == np.float64:
        return ROUND_TRIP_RTOL64
    return ROUND_TRIP_ULP_PER_LAYER32 * EPS[dtype] * depth


# The forward and inverse log-dets are sums of D per-coordinate terms: their sum may be off by
# rtol · (D + |logdet|), rtol as for the round trip.
def logdet_sum_bound(rtol, dim, logdet):
    return rtol * (dim + np.abs(logdet))


# Backends (NumPy twins, Numba, CUDA) and the float32 layer against its float64 twin compute the same map with
# different summation orders and fused operations; relative to the largest magnitude compared. 64 ulp per leaf
# layer in float32 (a coupling's network is several products deep); float64 as the round trip.
AGREE_ULP_PER_LAYER32 = 64
AGREE_RTOL64 = 1e-10


def agree_rtol(dtype, depth):
    dtype = np.dtype(dtype)
    if dtype == np.float64:
        return AGREE_RTOL64
    return AGREE_ULP_PER_LAYER32 * EPS[dtype] * depth


# Gradients of a float32 layer against those of its float64 twin: backward goes through every layer again, and a
# ReLU net's gradient is a product of its weights, so the float32 error grows with depth and conditioning.
# 1e-3 of the largest gradient entry: float32 keeps ~7 digits, this leaves 4 for the product; a wrong float32
# backward (a missing factor, a sign) is off by O(1).
GRAD32_RTOL = 1e-3

# Memory-free backprop rebuilds the input from the output, so its gradients carry the round trip's error,
# amplified by the backward pass's conditioning: 100 × the round-trip tolerance, relative to max |gradient|.
REVERSIBLE_FACTOR = 100

# ------------------------------------------------------------------------------------------------ central differences
# Step h = 2⁻²⁰ (FD_STEP), 100 ulp of rounding in f (ROUND_ULPS) and the kink indicator's bound (KINK_RTOL) are
# those of nflow.finite_differences, shared with nflow.gradcheck; their derivations are there.
# Gradient against central differences along a direction v: |analytic - numeric| ≤ GRAD_RTOL · S + rounding, with
# S = Σ |a|·|∂y/∂v| + Σ |b|·|∂logdet/∂v| the sum of the absolute contributions to ∂L/∂v (L = Σ a·y + Σ b·logdet),
# so that cancellation in L does not shrink the tolerance to nothing. 1e-6 is far above the truncation (1e-13) and
# the rounding (~1e-8), and far below what a wrong gradient gives.
GRAD_RTOL = 1e-6

# Log-det against log|det J|: each entry of the central-difference Jacobian is good to δ = ROUND_ULPS·u·max|y|/h,
# and log|det| moves by tr(J⁻¹ δJ) ≤ D·‖J⁻¹‖₂·δ. Tolerance: LOGDET_ATOL + D·‖J⁻¹‖₂·δ.
LOGDET_ATOL = 1e-7


# Samples must not interact: moving one sample must leave the others' outputs and log-dets where they were, up to
# SEPARATION_ULPS of their scale (a per-sample layer gives them bit for bit; 1000 ulp allows a BLAS that blocks
# differently). The move is SEPARATION_STEP · (high - low) along a random direction.
SEPARATION_ULPS = 1000
SEPARATION_STEP = 1e-2
