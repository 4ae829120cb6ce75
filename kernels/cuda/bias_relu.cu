// Bias + ReLU epilogue of a convolution, channel-major (the CUDA twin of kernels/reference/bias_relu.py).
//
//   bias_relu_forward:   y[c, m] = max(z[c, m] + b[c], 0)         in place in z
//   bias_relu_backward:  g[c, m] = gy[c, m] * [y[c, m] > 0],   gb[c] = sum_m g[c, m]
//
// NaN propagates as in numpy.maximum (the test is v < 0, false for NaN).
// The host puts "#define real_t float" or "#define real_t double" in front of this text.
// Layout: C-ordered (C, M). Forward: one thread per element (grid-stride loop). Backward: grid (blocks per
// channel, C); a block walks its share of row c, writes g, reduces its partial sum across the block (warp
// shuffles, then one shared-memory slot per warp) and thread 0 adds it to gb[c] with one atomicAdd (gb is
// zeroed by the host first), so the order of the sum is not fixed from run to run.

#include "block_reduce.cuh"

extern "C" __global__ void bias_relu_forward(real_t* __restrict__ z, const real_t* __restrict__ b, long long m,
                                             long long size) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < size; i += (long long)gridDim.x * blockDim.x) {
        real_t v = z[i] + b[i / m];
        z[i] = v < (real_t)0 ? (real_t)0 : v;
    }
}

// gy and g may be one buffer (the host passes gy as g when the caller owns it): neither is __restrict__, and
// each element is read before the same thread writes it.
extern "C" __global__ void bias_relu_backward(const real_t* __restrict__ y, const real_t* gy, real_t* g,
                                              real_t* __restrict__ gb, long long m) {
    long long base = (long long)blockIdx.y * m;
    real_t partial = (real_t)0;
    for (long long j = (long long)blockIdx.x * blockDim.x + threadIdx.x; j < m; j += (long long)gridDim.x * blockDim.x) {
        real_t gv = gy[base + j];
        real_t v = y[base + j] > (real_t)0 ? gv : gv * (real_t)0;   // gy * [y > 0]: NaN * 0 stays NaN
        g[base + j] = v;
        partial += v;
    }
    __shared__ real_t warp_sums[MAX_WARPS];
    real_t total = block_sum(partial, warp_sums);
    if (threadIdx.x == 0) atomicAdd(&gb[blockIdx.y], total);
}
