// Glow's 1x1 convolution, the channel map (the CUDA twin of kernels/reference/invconv.py; Kingma & Dhariwal
// 2018, section 3.2, eq. 9), on NCHW arrays with the pixel axes flattened, x[n] a (C, P) matrix, P = H * W:
//
//   invconv_map, transpose = 0:  y[n, o, p]  = sum_i W[o, i] * x[n, i, p]           (forward: y = W x)
//   invconv_map, transpose = 1:  gx[n, i, p] = sum_o W[o, i] * gy[n, o, p]          (backward: gx = W^T gy)
//   invconv_weight_grad:         gW[o, i]    = sum_{n, p} gy[n, o, p] * x[n, i, p]  (backward: gW = sum gy x^T)
//
// The host puts "#define real_t float" or "#define real_t double" in front of this text (and nothing else):
// one source, two compiled modules, cached by (file, dtype) in kernels/cuda/loader.py.
//
// invconv_map: one thread per output element (n, o, p), grid-stride. Each block first copies W (C * C
// entries, transposed when asked) into shared memory; consecutive threads share o and differ in p, so a warp
// reads one W entry (a shared-memory broadcast) and 32 consecutive x entries (one coalesced load) per step.
// The host passes C * C * sizeof(real_t) bytes of dynamic shared memory and runs the NumPy twin (cuBLAS)
// instead when W does not fit (kernels/cuda/invconv.py).
// invconv_weight_grad: one block per entry (o, i) (grid (C, C)); its threads stride over the N * P pixels,
// then reduce across the block (warp shuffles, then one shared-memory slot per warp). No atomics: the
// summation order is fixed, results are the same from run to run.

#include "block_reduce.cuh"

extern "C" __global__ void invconv_map(const real_t* __restrict__ x, const real_t* __restrict__ w,
                                       real_t* __restrict__ y, int c, long long pixels, long long size,
                                       int transpose) {
    extern __shared__ __align__(sizeof(double)) unsigned char shared_bytes[];
    real_t* ws = reinterpret_cast<real_t*>(shared_bytes);  // ws[o * c + i]: the matrix applied, row-major
    for (int k = threadIdx.x; k < c * c; k += blockDim.x) {
        int row = k / c, col = k % c;
        ws[k] = transpose ? w[col * c + row] : w[k];
    }
    __syncthreads();
    for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < size;
         idx += (long long)gridDim.x * blockDim.x) {
        long long p = idx % pixels;
        long long sample_row = idx / pixels;             // n * c + o
        int o = (int)(sample_row % c);
        const real_t* xs = x + (sample_row - o) * pixels + p;  // x[n, 0, p]
        const real_t* wo = ws + o * c;
        real_t acc = (real_t)0;
        for (int i = 0; i < c; ++i) acc += wo[i] * xs[i * pixels];
        y[idx] = acc;
    }
}

extern "C" __global__ void invconv_weight_grad(const real_t* __restrict__ x, const real_t* __restrict__ gy,
                                               real_t* __restrict__ gw, int c, long long pixels,
                                               long long samples) {
    int i = blockIdx.x, o = blockIdx.y;
    real_t partial = (real_t)0;
    for (long long k = threadIdx.x; k < samples * pixels; k += blockDim.x) {
        long long n = k / pixels, p = k % pixels;
        partial += gy[(n * c + o) * pixels + p] * x[(n * c + i) * pixels + p];
    }
    __shared__ real_t warp_sums[MAX_WARPS];
    real_t total = block_sum(partial, warp_sums);
    if (threadIdx.x == 0) gw[o * c + i] = total;
}
