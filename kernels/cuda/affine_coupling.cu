// Affine coupling, element-wise part (the CUDA twin of kernels/reference/affine_coupling.py).
//
//   forward:           y = x * s + t,            logdet[n] =  sum_m log s[n, m]
//   inverse:           x = (y - t) / s,          logdet[n] = -sum_m log s[n, m]
//   forward_backward:  dx = gy * s,  dh = (gy * x * s + glogdet[n]) * dlog_s/dh   (dt = gy, no kernel)
//   inverse_backward:  dy = gx / s,  dt = -gx / s,  dh = -(gx * x + glogdet[n]) * dlog_s/dh
//
// Log-scale forms: SIGMOID (Glow) s = sigmoid(h + 2), log s = logsigmoid(h + 2), dlog_s/dh = 1 - s;
// EXP (RealNVP) s = exp(h), log s = h, dlog_s/dh = 1.
//
// The host puts "#define real_t float" or "#define real_t double" in front of this text (and nothing else):
// one source, two compiled modules, cached by (file, dtype) in kernels/cuda/loader.py.
//
// Layout: x, h, t, ... are C-ordered (N, M) arrays (the wrapper flattens the pixel axes).
// Per-sample log-det: the grid is (blocks per sample, N); each block reduces its elements' log s in registers,
// then across the block (warp shuffles, then one shared-memory slot per warp), and thread 0 adds the block's
// sum to logdet[n] with one atomicAdd (logdet is zeroed by the host first). Summation order across blocks is
// therefore not fixed: results may differ in the last bits from run to run.

#define SIGMOID_SHIFT 2.0   // sigmoid(h + 2): identity-like start for a zero-initialised network
#define FORM_EXP 1
#include "block_reduce.cuh"

__device__ __forceinline__ void log_scale(real_t hv, int form, real_t* s, real_t* inv_s, real_t* log_s,
                                          real_t* dlog_s) {
    if (form == FORM_EXP) {
        *s = exp(hv);
        *inv_s = exp(-hv);
        *log_s = hv;
        *dlog_s = (real_t)1;
        return;
    }
    real_t u = hv + (real_t)SIGMOID_SHIFT;
    real_t e = exp(-fabs(u));                     // in (0, 1]: no overflow for any u
    real_t one_e = (real_t)1 + e;
    *s = u >= (real_t)0 ? (real_t)1 / one_e : e / one_e;
    *inv_s = u >= (real_t)0 ? one_e : one_e / e;
    *log_s = fmin(u, (real_t)0) - log1p(e);       // logsigmoid(u)
    *dlog_s = (real_t)1 - *s;
}

// sign = +1: y = x * s + t and logdet += sum log s (forward); sign = -1: y = (x - t) / s, logdet -= ... (inverse)
extern "C" __global__ void affine_coupling_map(const real_t* __restrict__ x, const real_t* __restrict__ h,
                                               const real_t* __restrict__ t, real_t* __restrict__ y,
                                               real_t* __restrict__ logdet, long long m, int form, int sign) {
    long long n = blockIdx.y;
    long long base = n * m;
    real_t partial = (real_t)0;
    for (long long j = (long long)blockIdx.x * blockDim.x + threadIdx.x; j < m; j += (long long)gridDim.x * blockDim.x) {
        real_t s, inv_s, log_s, dlog_s;
        log_scale(h[base + j], form, &s, &inv_s, &log_s, &dlog_s);
        y[base + j] = sign > 0 ? x[base + j] * s + t[base + j] : (x[base + j] - t[base + j]) * inv_s;
        partial += log_s;
    }
    __shared__ real_t warp_sums[MAX_WARPS];
    real_t total = block_sum(partial, warp_sums);
    if (threadIdx.x == 0) atomicAdd(&logdet[n], sign > 0 ? total : -total);
}

extern "C" __global__ void affine_coupling_forward_backward(const real_t* __restrict__ x, const real_t* __restrict__ h,
                                                            const real_t* __restrict__ gy,
                                                            const real_t* __restrict__ glogdet,
                                                            real_t* __restrict__ gx, real_t* __restrict__ gh,
                                                            long long m, long long size, int form) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < size; i += (long long)gridDim.x * blockDim.x) {
        real_t s, inv_s, log_s, dlog_s;
        log_scale(h[i], form, &s, &inv_s, &log_s, &dlog_s);
        real_t g = gy[i];
        gx[i] = g * s;
        gh[i] = (g * x[i] * s + glogdet[i / m]) * dlog_s;
    }
}

extern "C" __global__ void affine_coupling_inverse_backward(const real_t* __restrict__ y, const real_t* __restrict__ h,
                                                            const real_t* __restrict__ t,
                                                            const real_t* __restrict__ gx,
                                                            const real_t* __restrict__ glogdet,
                                                            real_t* __restrict__ gy, real_t* __restrict__ gh,
                                                            real_t* __restrict__ gt, long long m, long long size,
                                                            int form) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < size; i += (long long)gridDim.x * blockDim.x) {
        real_t s, inv_s, log_s, dlog_s;
        log_scale(h[i], form, &s, &inv_s, &log_s, &dlog_s);
        real_t g = gx[i];
        real_t xv = (y[i] - t[i]) * inv_s;
        real_t gyv = g * inv_s;
        gy[i] = gyv;
        gh[i] = -(g * xv + glogdet[i / m]) * dlog_s;
        gt[i] = -gyv;
    }
}
