// ActNorm (Kingma & Dhariwal 2018, section 3.1), the CUDA twin of kernels/reference/actnorm.py.
//
//   forward:           y = (x + b) * exp(log_s)            inverse: x = y * exp(-log_s) - b
//   forward_backward:  dx = gy * s;  db = sum gy * s;  dlog_s = sum gy * (x + b) * s  (+ P * sum_n glogdet, host)
//   inverse_backward:  dy = gx / s;  db = -sum gx;     dlog_s = -sum gx * y / s      (- P * sum_n glogdet, host)
//   (sums over the batch and the P pixels of each channel; the log-det itself, P * sum_c log_s per sample, is
//   one number the host fills in.)
//
// The host puts "#define real_t float" or "#define real_t double" in front of this text.
// Layout: C-ordered (N, C, P). The element-wise map is one thread per element (grid-stride loop). The
// backward grid is (blocks per channel, C): a block walks its share of channel c's N*P elements, reduces its two
// partial sums across the block (warp shuffles, then shared memory) and thread 0 adds them to db[c], dlog_s[c]
// with atomicAdd (both zeroed by the host first).

#include "block_reduce.cuh"

// sign = +1: y = (x + b) * exp(log_s);  sign = -1: y = x * exp(-log_s) - b
extern "C" __global__ void actnorm_map(const real_t* __restrict__ x, const real_t* __restrict__ bias,
                                       const real_t* __restrict__ log_s, real_t* __restrict__ y,
                                       long long channels, long long pixels, long long size, int sign) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < size; i += (long long)gridDim.x * blockDim.x) {
        long long c = (i / pixels) % channels;
        if (sign > 0) {
            y[i] = (x[i] + bias[c]) * exp(log_s[c]);
        } else {
            y[i] = x[i] * exp(-log_s[c]) - bias[c];
        }
    }
}

// inverse = 0: (gx, db, dlog_s) of the forward map from gy;  inverse = 1: (gy, db, dlog_s) of the inverse from gx.
extern "C" __global__ void actnorm_backward(const real_t* __restrict__ x, const real_t* __restrict__ bias,
                                            const real_t* __restrict__ log_s, const real_t* __restrict__ g_out,
                                            real_t* __restrict__ g_in, real_t* __restrict__ gbias,
                                            real_t* __restrict__ glog_s, long long n_samples, long long channels,
                                            long long pixels, int inverse) {
    __shared__ real_t warp_sums[MAX_WARPS];
    long long c = blockIdx.y;
    long long per_channel = n_samples * pixels;
    real_t b = bias[c];
    real_t s = exp(inverse ? -log_s[c] : log_s[c]);
    real_t sum_b = (real_t)0, sum_s = (real_t)0;
    for (long long j = (long long)blockIdx.x * blockDim.x + threadIdx.x; j < per_channel; j += (long long)gridDim.x * blockDim.x) {
        long long i = ((j / pixels) * channels + c) * pixels + j % pixels;
        real_t g = g_out[i];
        real_t gs = g * s;
        g_in[i] = gs;
        if (inverse) {
            sum_b -= g;
            sum_s -= gs * x[i];
        } else {
            sum_b += gs;
            sum_s += gs * (x[i] + b);
        }
    }
    sum_b = block_sum(sum_b, warp_sums);
    sum_s = block_sum(sum_s, warp_sums);
    if (threadIdx.x == 0) {
        atomicAdd(&gbias[c], sum_b);
        atomicAdd(&glog_s[c], sum_s);
    }
}
