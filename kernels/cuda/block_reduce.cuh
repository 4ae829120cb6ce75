// Block-wide sum, shared by the .cu files of this folder: kernels/cuda/loader.py replaces the line that
// includes this header with its text before compiling (NVRTC then needs no include path).
//
// block_sum(v, warp_sums): the sum of v over the block, valid in thread 0. Each warp reduces its 32 values
// with shuffles, lane 0 of each warp parks its partial sum in warp_sums (a __shared__ array of MAX_WARPS
// slots the caller declares), and warp 0 reduces those. The leading __syncthreads lets a kernel call it more
// than once with the same warp_sums (a previous call's readers are done before it is overwritten). Every thread
// of the block must call it; blockDim.x must be a multiple of WARP (loader.THREADS is).

#define WARP 32
#define MAX_WARPS 32        // blocks of at most 1024 threads

__device__ __forceinline__ real_t block_sum(real_t v, real_t* warp_sums) {
    for (int offset = WARP / 2; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
    int lane = threadIdx.x % WARP, warp = threadIdx.x / WARP;
    __syncthreads();  // warp_sums may still be read by a previous call
    if (lane == 0) warp_sums[warp] = v;
    __syncthreads();
    int n_warps = (blockDim.x + WARP - 1) / WARP;
    v = threadIdx.x < n_warps ? warp_sums[threadIdx.x] : (real_t)0;
    if (warp == 0) {
        for (int offset = WARP / 2; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
    }
    return v;
}
